package fieldseal

import "context"

// GrantsReport answers "who can touch what?": every privilege on
// fieldseal's objects, the roles that bypass row-level security, each
// table's row-level security and owner, and everything that differs from
// the least-privilege policy the migrations define.
type GrantsReport struct {
	Drift      []Drift       `json:"drift"`
	Privileges []Privilege   `json:"privileges"`
	Members    []Member      `json:"members"`
	Bypassers  []Bypasser    `json:"bypassers"`
	Tables     []TableStatus `json:"tables"`
	// Workers, on a Citus coordinator, are the workers whose privileges
	// were compared with the coordinator's (functions, distributed and
	// reference tables and their columns, parameters; and each shard's
	// with its table's): a difference is a drift.
	Workers []string `json:"workers,omitempty"`
	// WorkersUnchecked, on a Citus coordinator, says why the workers
	// were not compared.
	WorkersUnchecked string `json:"workers_unchecked,omitempty"`
}

// Drift is one difference from the policy.
type Drift struct {
	Problem    string `json:"problem"`
	Role       string `json:"role"`
	ObjectType string `json:"object_type"`
	Object     string `json:"object"`
	Column     string `json:"column,omitempty"`
	Privilege  string `json:"privilege,omitempty"`
}

// Privilege is one privilege held on one of fieldseal's objects.
type Privilege struct {
	Grantee    string `json:"grantee"`
	ObjectType string `json:"object_type"`
	Object     string `json:"object"`
	Column     string `json:"column,omitempty"`
	Privilege  string `json:"privilege"`
}

// Member is a role holding a group role's privileges through membership,
// directly (Via empty) or through the role Via.
type Member struct {
	Group     string `json:"group"`
	Member    string `json:"member"`
	Via       string `json:"via,omitempty"`
	CanLogin  bool   `json:"can_login"`
	Superuser bool   `json:"superuser"`
	BypassRLS bool   `json:"bypassrls"`
}

// Bypasser is a role that steps around row-level security.
type Bypasser struct {
	Role     string `json:"role"`
	How      string `json:"how"`
	CanLogin bool   `json:"can_login"`
}

// TableStatus is one table's row-level security and owner.
type TableStatus struct {
	Table      string `json:"table"`
	Owner      string `json:"owner"`
	RLSEnabled bool   `json:"rls_enabled"`
	RLSForced  bool   `json:"rls_forced"`
}

// GrantsService produces the grants report.
type GrantsService interface {
	// Grants returns the report. EUNAVAILABLE.
	Grants(ctx context.Context) (GrantsReport, error)
}
