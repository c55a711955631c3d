-- search_tags' second index leads with the tag (issue "Plans that do not
-- depend on luck"). As (subject, tag) it served a condition on the
-- subject alone as well as the primary key (subject, record_id, field)
-- did, and a plan made on small or never-analysed tables chose it for
-- statements that name records: DeleteTagsOf then read every tag of the
-- subject for each batch of a reindex (a 200,000-record reindex took
-- 84-148 s on such plans, 35 s on fresh ones: make bench's skewed rows).
-- Led by the tag, it serves only what it is for, a search's lookup of
-- (tag, subject); everything that names records takes the primary key.
--
-- The index is rebuilt in the migration's transaction: writes of tags
-- wait for it (about a second per million tags).

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
CREATE INDEX search_tags_by_tag ON fieldseal.search_tags (tag, subject) INCLUDE (record_id, field);
DROP INDEX fieldseal.search_tags_tag;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
CREATE INDEX search_tags_tag ON fieldseal.search_tags (subject, tag) INCLUDE (record_id, field);
DROP INDEX fieldseal.search_tags_by_tag;
RESET ROLE;
