-- 0008: records a pass could not lock because someone was writing them.
-- A pass runs in READ COMMITTED and locks the app rows it will read and write
-- with FOR UPDATE SKIP LOCKED: a record a user holds in an open transaction
-- is not waited for and does not abort the batch; it is deferred here and
-- retried on a short back-off, while the rest of the batch commits (B11).

CREATE TABLE tandem.deferred_records (
    integration_id  bigint NOT NULL CONSTRAINT deferred_records_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    side            text NOT NULL CONSTRAINT deferred_records_side_check CHECK (side IN ('pipeline', 'crm')),
    record_id       text NOT NULL,
    since           timestamptz NOT NULL DEFAULT now(),
    attempts        int NOT NULL DEFAULT 1,
    retry_at        timestamptz NOT NULL,
    CONSTRAINT deferred_records_pk PRIMARY KEY (integration_id, module, side, record_id)
);
COMMENT ON TABLE tandem.deferred_records IS 'Records a pass found locked by someone else''s open transaction: not waited for, not an error; retried from retry_at on a back-off that grows to one second (B11).';

ALTER TABLE tandem.runs ADD COLUMN deferred bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN tandem.runs.deferred IS 'Records the pass left for later because a user was writing them.';

CREATE OR REPLACE VIEW tandem.run_history AS
SELECT i.name AS integration, r.run_id, r.kind, r.started_at, r.finished_at,
       round(extract(epoch FROM r.finished_at - r.started_at) * 1000, 1) AS duration_ms,
       r.changes_read, r.matched, r.created_in_pipeline, r.created_in_crm,
       r.updated_in_pipeline, r.updated_in_crm, r.conflicts, r.errors, r.waiting,
       r.deferred
  FROM tandem.runs r
  JOIN tandem.integrations i ON i.integration_id = r.integration_id;
COMMENT ON VIEW tandem.run_history IS 'Every pass that did something: what it read, matched, created, updated, decided, could not write, and left for later because a user was writing it.';

CREATE OR REPLACE VIEW tandem.pending_changes AS
WITH logged AS (
    SELECT DISTINCT ON (mp.integration_id, mp.module, cl.table_oid, cl.record_id)
           mp.integration_id, mp.tab, mp.module,
           CASE WHEN cl.table_oid = mp.pipeline_table::oid THEN 'pipeline' ELSE 'crm' END AS side,
           cl.record_id, cl.operation, cl.logged_at
      FROM tandem.change_log cl
      JOIN tandem.module_pairs mp ON cl.table_oid IN (mp.pipeline_table::oid, mp.crm_table::oid)
      JOIN tandem.sync_cursors sc ON sc.integration_id = mp.integration_id AND cl.xid >= sc.position
           AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot)
     ORDER BY mp.integration_id, mp.module, cl.table_oid, cl.record_id, cl.logged_at DESC
)
SELECT i.name AS integration, g.tab, g.module, g.side, g.record_id,
       CASE g.operation WHEN 'I' THEN 'insert' WHEN 'U' THEN 'update' ELSE 'delete' END AS change,
       CASE WHEN t.state NOT IN ('initial_sync', 'active') THEN 'nothing: the tab is ' || t.state
            WHEN g.operation = 'D' THEN 'nothing: deletions are not propagated (R4)'
            WHEN l.link_id IS NOT NULL THEN 'merge field by field with the linked '
                 || CASE g.side WHEN 'pipeline' THEN 'CRM app record ' || l.crm_id ELSE 'pipeline app record ' || l.pipeline_id END
            WHEN g.side = 'crm' THEN 'match or create in the pipeline app, if it is in the CRM view'
            ELSE 'match or create in the CRM app' END AS next_action,
       g.logged_at AS since
  FROM logged g
  JOIN tandem.integrations i ON i.integration_id = g.integration_id
  JOIN tandem.tabs t ON t.integration_id = g.integration_id AND t.tab = g.tab
  LEFT JOIN tandem.links l ON l.integration_id = g.integration_id AND l.module = g.module
       AND CASE g.side WHEN 'pipeline' THEN l.pipeline_id ELSE l.crm_id END = g.record_id
UNION ALL
SELECT DISTINCT ON (w.integration_id, w.module, w.side, w.record_id)
       i.name, mp.tab, w.module, w.side, w.record_id, 'waiting',
       'sync once its parent record is linked (R11)', w.since
  FROM tandem.waiting_records w
  JOIN tandem.integrations i ON i.integration_id = w.integration_id
  JOIN tandem.module_pairs mp ON mp.integration_id = w.integration_id AND mp.module = w.module
UNION ALL
SELECT i.name, mp.tab, f.module, f.side, f.record_id, 'failed',
       'retry at ' || f.retry_at || ' or when the record changes: ' || f.message, f.last_failed_at
  FROM tandem.record_failures f
  JOIN tandem.integrations i ON i.integration_id = f.integration_id
  JOIN tandem.module_pairs mp ON mp.integration_id = f.integration_id AND mp.module = f.module
 WHERE f.resolved_at IS NULL
UNION ALL
SELECT i.name, mp.tab, d.module, d.side, d.record_id, 'deferred',
       'sync once the transaction writing it ends (retry at ' || d.retry_at || ', attempt ' || d.attempts || ')', d.since
  FROM tandem.deferred_records d
  JOIN tandem.integrations i ON i.integration_id = d.integration_id
  JOIN tandem.module_pairs mp ON mp.integration_id = d.integration_id AND mp.module = d.module;
COMMENT ON VIEW tandem.pending_changes IS 'A dry run of the next pass: every record it would look at (changed since the cursor, waiting for a parent, due for a retry, or deferred because a user was writing it) and what it would do.';

-- Removing capture as a guest. DROP TRIGGER needs the ownership of the table,
-- which Tandem's role need not have (README, "Roles"), yet deactivating a tab
-- (R15) and removing the integration (R17) must take the triggers away. The
-- table's capture triggers are re-pointed (CREATE OR REPLACE TRIGGER needs
-- only the TRIGGER privilege) at a function made for this one call, and
-- dropping that function, which Tandem's role owns, drops them with it.
CREATE OR REPLACE FUNCTION tandem._remove_capture(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $remove$
DECLARE
    used oid[];
    old_function oid;
    capture record;
    detached text := format('_capture_detached_%s', pg_backend_pid());
BEGIN
    SELECT array_agg(DISTINCT tgfoid) INTO used FROM pg_catalog.pg_trigger
     WHERE tgrelid = target AND tgname IN ('_900_tandem_capture_insert', '_900_tandem_capture_update', '_900_tandem_capture_delete');
    IF used IS NOT NULL THEN
        EXECUTE format('CREATE FUNCTION tandem.%I() RETURNS trigger LANGUAGE plpgsql AS %L', detached, 'BEGIN RETURN NULL; END');
        FOR capture IN SELECT t.tgname, upper(substr(t.tgname, length('_900_tandem_capture_') + 1)) AS operation
                         FROM pg_catalog.pg_trigger t
                        WHERE t.tgrelid = target
                          AND t.tgname IN ('_900_tandem_capture_insert', '_900_tandem_capture_update', '_900_tandem_capture_delete') LOOP
            EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()',
                           capture.tgname, capture.operation, target, detached);
        END LOOP;
        EXECUTE format('DROP FUNCTION tandem.%I() CASCADE', detached);
        FOREACH old_function IN ARRAY used LOOP
            PERFORM tandem._drop_unused_capture_function(old_function);
        END LOOP;
    END IF;
    DELETE FROM tandem.watched_tables w WHERE w.table_name = target;
END
$remove$;
COMMENT ON FUNCTION tandem._remove_capture(regclass) IS 'Removes the capture triggers (_900_tandem_capture_*) from an app table without needing its ownership, and their function once no table uses it.';
REVOKE ALL ON FUNCTION tandem._remove_capture(regclass) FROM PUBLIC;

-- tab_status with the lifecycle's columns (0007 rebuilt it from 0003's text).
CREATE OR REPLACE VIEW tandem.tab_status AS
SELECT i.name AS integration,
       t.tab,
       t.state,
       (t.initial_sync_completed_at IS NOT NULL) AS initial_sync_complete,
       t.activated_at,
       t.initial_sync_completed_at,
       (SELECT count(*) FROM tandem.links l
          JOIN tandem.module_pairs mp ON mp.integration_id = l.integration_id AND mp.module = l.module
         WHERE l.integration_id = t.integration_id AND mp.tab = t.tab) AS linked_records,
       (SELECT count(DISTINCT (cl.table_oid, cl.record_id)) FROM tandem.change_log cl
          JOIN tandem.module_pairs mp ON cl.table_oid IN (mp.pipeline_table, mp.crm_table)
          JOIN tandem.sync_cursors sc ON sc.integration_id = mp.integration_id
         WHERE mp.integration_id = t.integration_id AND mp.tab = t.tab AND cl.xid >= sc.position
           AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot)) AS pending_changes,
       (SELECT count(DISTINCT (w.module, w.side, w.record_id)) FROM tandem.waiting_records w
          JOIN tandem.module_pairs mp ON mp.integration_id = w.integration_id AND mp.module = w.module
         WHERE w.integration_id = t.integration_id AND mp.tab = t.tab) AS waiting_records,
       (SELECT count(*) FROM tandem.record_failures f
          JOIN tandem.module_pairs mp ON mp.integration_id = f.integration_id AND mp.module = f.module
         WHERE f.integration_id = t.integration_id AND mp.tab = t.tab AND f.resolved_at IS NULL) AS open_errors,
       (SELECT count(*) FROM tandem.conflict_decisions c
          JOIN tandem.module_pairs mp ON mp.integration_id = c.integration_id AND mp.module = c.module
         WHERE c.integration_id = t.integration_id AND mp.tab = t.tab) AS conflicts,
       CASE WHEN t.activated_at IS NOT NULL THEN
            (SELECT max(r.finished_at) FROM tandem.runs r WHERE r.integration_id = t.integration_id) END AS last_pass_at,
       t.initial_sync_progress,
       t.job,
       t.job_policy,
       t.job_started_at,
       t.inactive_since
  FROM tandem.tabs t
  JOIN tandem.integrations i ON i.integration_id = t.integration_id;
COMMENT ON VIEW tandem.tab_status IS 'Each tab of each integration: its state (inactive since when), the background job it runs (initial sync, edit sync, reactivation) and its progress, linked records, changes not yet synced, records waiting for a parent, open record errors, conflicts decided, and the last pass.';

-- Every function of schema tandem runs with Tandem's rights and a pinned
-- search_path, and none is executable by PUBLIC (README, "Roles"); this
-- includes the ones earlier migrations of this release added (0006's
-- _error_text).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'tandem'::regnamespace
                AND NOT (p.prosecdef AND coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']) LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'tandem'::regnamespace LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
