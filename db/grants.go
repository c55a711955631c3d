package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal"
)

// Grants implements fieldseal.GrantsService over the app's pool (waiting
// for a connection no longer than any request). The report names no
// subject, so it runs outside Store.run, in a snapshot of its own.
func (s *Store) Grants(ctx context.Context) (fieldseal.GrantsReport, error) {
	var rep fieldseal.GrantsReport
	conn, err := s.acquire(ctx)
	if err != nil {
		return rep, mapError(err)
	}
	defer conn.Release()
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		rep, err = grantsReport(ctx, New(tx))
		return err
	})
	return rep, mapError(err)
}

// GrantsReport reads the report over an admin (or auditor) connection:
// `fieldseal audit grants`.
func GrantsReport(ctx context.Context, adminURL string) (fieldseal.GrantsReport, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fieldseal.GrantsReport{}, fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	return grantsReport(ctx, New(conn))
}

func grantsReport(ctx context.Context, q *Queries) (fieldseal.GrantsReport, error) {
	rep := fieldseal.GrantsReport{Drift: []fieldseal.Drift{}}
	drift, err := q.ListGrantsDrift(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range drift {
		rep.Drift = append(rep.Drift, fieldseal.Drift{Problem: d.Problem, Role: d.Role, ObjectType: d.ObjectType,
			Object: d.ObjectName, Column: d.ColumnName, Privilege: d.Privilege})
	}
	risks, err := q.ListLoggingRisks(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range risks {
		d := fieldseal.Drift{Problem: "setting puts values into the log", Role: r.Role, ObjectType: "setting", Object: r.Name + " = " + r.Value}
		switch {
		case r.Role == "" && r.Database == "":
			d.Role, d.Column = "(every role)", "server"
		case r.Role == "":
			d.Role, d.Column = "(every role)", "database "+r.Database
		case r.Database != "":
			d.Column = "database " + r.Database
		}
		rep.Drift = append(rep.Drift, d)
	}
	privs, err := q.ListPrivileges(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range privs {
		rep.Privileges = append(rep.Privileges, fieldseal.Privilege{Grantee: p.Grantee, ObjectType: p.ObjectType,
			Object: p.ObjectName, Column: p.ColumnName, Privilege: p.Privilege})
	}
	members, err := q.ListRoleMembers(ctx)
	if err != nil {
		return rep, err
	}
	for _, m := range members {
		rep.Members = append(rep.Members, fieldseal.Member{Group: m.GroupName, Member: m.Member, Via: m.Via,
			CanLogin: m.CanLogin, Superuser: m.Superuser, BypassRLS: m.Bypassrls})
	}
	byp, err := q.ListBypassers(ctx)
	if err != nil {
		return rep, err
	}
	for _, b := range byp {
		rep.Bypassers = append(rep.Bypassers, fieldseal.Bypasser{Role: b.Role, How: b.How, CanLogin: b.CanLogin})
	}
	tables, err := q.ListTableSecurity(ctx)
	if err != nil {
		return rep, err
	}
	for _, t := range tables {
		rep.Tables = append(rep.Tables, fieldseal.TableStatus{Table: t.TableName, Owner: t.Owner, RLSEnabled: t.RlsEnabled, RLSForced: t.RlsForced})
	}
	return rep, nil
}

var _ fieldseal.GrantsService = (*Store)(nil)
