-- 0005: the lifecycle of tabs and integrations (R14-R17): background jobs
-- besides the initial sync (the re-scan of an edit sync, the catch-up of a
-- reactivation), inactive tabs that cost the apps nothing, and removal that
-- leaves no trace on the app tables.

-- A tab runs at most one background job at a time. The initial sync is one;
-- an edit sync re-scans the CRM view and brings newly mapped fields into line
-- (R14); a reactivation diffs every linked record against its mirror and
-- syncs what was added meanwhile, under the policy given for it (R16).
ALTER TABLE tandem.tabs DROP CONSTRAINT tabs_state_check;
ALTER TABLE tandem.tabs ADD CONSTRAINT tabs_state_check
    CHECK (state IN ('configured', 'initial_sync', 'active', 'inactive', 'removed'));
ALTER TABLE tandem.tabs
    ADD COLUMN job text CONSTRAINT tabs_job_check CHECK (job IN ('initial_sync', 'edit_sync', 'reactivation')),
    ADD COLUMN job_policy text
        CONSTRAINT tabs_job_policy_check CHECK (job_policy IN ('latest', 'crm_wins', 'pipeline_wins', 'skip')),
    ADD COLUMN job_started_at timestamptz,
    ADD COLUMN inactive_since timestamptz;
UPDATE tandem.tabs SET job = 'initial_sync', job_started_at = activated_at WHERE state = 'initial_sync';
COMMENT ON COLUMN tandem.tabs.state IS 'configured (stored, not syncing), initial_sync (R10), active, inactive (deactivated: nothing syncs, nothing is deleted, R15), removed (the integration was removed, R17).';
COMMENT ON COLUMN tandem.tabs.job IS 'The background job the tab runs in chunks: initial_sync (R10), edit_sync (re-scan after a view or mapping change, R14), reactivation (catch-up after being inactive, R16); NULL when none.';
COMMENT ON COLUMN tandem.tabs.job_policy IS 'The conflict policy of a reactivation''s catch-up (R16); live conflicts use the integration''s policy.';
COMMENT ON COLUMN tandem.tabs.initial_sync_progress IS 'Progress of the running job, per module and scan (pipeline, crm: unlinked records; links: linked records): the last key handled and the counts so far.';
COMMENT ON COLUMN tandem.tabs.inactive_since IS 'When the tab was deactivated (R15).';

ALTER TABLE tandem.runs DROP CONSTRAINT runs_kind_check;
ALTER TABLE tandem.runs ADD CONSTRAINT runs_kind_check
    CHECK (kind IN ('initial_sync', 'incremental', 'edit_sync', 'reactivation'));

ALTER TABLE tandem.integrations
    ADD COLUMN removed_at timestamptz,
    ADD COLUMN config_version bigint NOT NULL DEFAULT 1;
COMMENT ON COLUMN tandem.integrations.config_version IS 'Grows with every change of the stored configuration, so that every host bound to the integration binds again before its next pass.';
COMMENT ON COLUMN tandem.integrations.removed_at IS 'When the integration was removed (R17): nothing syncs, its triggers and indexes are gone from the app tables, its history stays for reporting.';

-- Match indexes Tandem created on app tables (B3), so that removal drops
-- exactly those and nothing else. One index may serve several integrations.
-- The index is kept by name, not as regclass: a dump restores this table's
-- rows before it creates the indexes.
CREATE TABLE tandem.match_indexes (
    index_schema    text NOT NULL,
    index_name      text NOT NULL,
    integration_id  bigint NOT NULL CONSTRAINT match_indexes_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    table_name      regclass NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT match_indexes_pk PRIMARY KEY (index_schema, index_name, integration_id)
);
COMMENT ON TABLE tandem.match_indexes IS 'Indexes Tandem created on app tables for matching (B3), per integration that uses them; dropped when no integration uses them any more (R17).';
INSERT INTO tandem.match_indexes (index_schema, index_name, integration_id, table_name)
SELECT DISTINCT n.nspname, c.relname, mp.integration_id, i.indrelid::regclass
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN tandem.module_pairs mp ON i.indrelid IN (mp.pipeline_table::oid, mp.crm_table::oid)
 WHERE c.relname LIKE 'tandem\_match\_%';

-- Removes the capture triggers and function of one app table.
CREATE FUNCTION tandem._remove_capture(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $remove$
DECLARE
    watched record;
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_insert ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_update ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_delete ON %s', target);
    FOR watched IN DELETE FROM tandem.watched_tables w WHERE w.table_name = target RETURNING w.table_oid LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS tandem.%I()', format('_capture_%s', watched.table_oid));
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tandem.%I()', format('_capture_%s', target::oid));
END
$remove$;
COMMENT ON FUNCTION tandem._remove_capture(regclass) IS 'Drops the capture triggers (_900_tandem_capture_*) of an app table and their function.';

-- The app tables that need capture: those of tabs that sync (initial_sync or
-- active) in integrations that were not removed, with their key columns.
CREATE VIEW tandem._captured_tables AS
SELECT DISTINCT s.table_name, s.key_column
  FROM tandem.module_pairs mp
  JOIN tandem.tabs t ON t.integration_id = mp.integration_id AND t.tab = mp.tab AND t.state IN ('initial_sync', 'active')
  JOIN tandem.integrations i ON i.integration_id = mp.integration_id AND i.removed_at IS NULL
 CROSS JOIN LATERAL (VALUES (mp.pipeline_table, mp.pipeline_key), (mp.crm_table, mp.crm_key)) s(table_name, key_column);
COMMENT ON VIEW tandem._captured_tables IS 'App tables whose changes must be captured now: those of syncing tabs of integrations not removed.';

-- Brings the triggers on the app tables in line with the tabs' states: a
-- table of a syncing tab is captured, any other is not (an inactive tab costs
-- its app's writers nothing, R15; a removed integration leaves no trigger, R17).
CREATE FUNCTION tandem._reconcile_capture() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $reconcile$
DECLARE
    target record;
BEGIN
    FOR target IN SELECT w.table_name FROM tandem.watched_tables w
                   WHERE NOT EXISTS (SELECT 1 FROM tandem._captured_tables c WHERE c.table_name = w.table_name) LOOP
        PERFORM tandem._remove_capture(target.table_name);
    END LOOP;
    FOR target IN SELECT c.table_name, c.key_column FROM tandem._captured_tables c
                   WHERE NOT EXISTS (SELECT 1 FROM tandem.watched_tables w WHERE w.table_name = c.table_name) LOOP
        PERFORM tandem._install_capture(target.table_name, target.key_column);
    END LOOP;
    -- Changes of tables nobody captures any more will never be read.
    DELETE FROM tandem.change_log cl
     WHERE NOT EXISTS (SELECT 1 FROM tandem.watched_tables w WHERE w.table_oid = cl.table_oid);
END
$reconcile$;
COMMENT ON FUNCTION tandem._reconcile_capture() IS 'Installs capture on the tables of syncing tabs and removes it from every other table.';

-- Drops the match indexes Tandem created that no integration still in place
-- uses. Only indexes recorded in tandem.match_indexes are ever dropped. An
-- index Tandem's role may not drop (the tables' owner created it, README
-- "Roles") is forgotten, and the statement for the owner to run is returned.
CREATE FUNCTION tandem._drop_unused_match_indexes() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $drop$
DECLARE
    unused record;
    statement text;
BEGIN
    FOR unused IN SELECT DISTINCT m.index_schema, m.index_name FROM tandem.match_indexes m
                   WHERE NOT EXISTS (SELECT 1 FROM tandem.match_indexes u
                                       JOIN tandem.integrations i ON i.integration_id = u.integration_id AND i.removed_at IS NULL
                                      WHERE u.index_schema = m.index_schema AND u.index_name = m.index_name) LOOP
        statement := format('DROP INDEX IF EXISTS %I.%I', unused.index_schema, unused.index_name);
        IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = unused.index_schema AND c.relname = unused.index_name
                      AND NOT pg_has_role(c.relowner, 'USAGE')) THEN
            RETURN NEXT statement || ';';
        ELSE
            EXECUTE statement;
        END IF;
        DELETE FROM tandem.match_indexes m WHERE m.index_schema = unused.index_schema AND m.index_name = unused.index_name;
    END LOOP;
END
$drop$;
COMMENT ON FUNCTION tandem._drop_unused_match_indexes() IS 'Drops the tandem_match_* indexes on app tables that no integration still in place uses (R17); returns the DROP statements the tables'' owner must run for those Tandem''s role may not drop.';

-- tandem.tab_status shows the job, its policy and since when a tab is inactive:
-- see 0008 (0007 rebuilds the reporting views).
