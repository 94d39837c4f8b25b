-- 0003: reporting views, for psql and for tandem_report() (B7).
-- Each has an `integration` column (the integration's name).

CREATE VIEW tandem.tab_status AS
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
          JOIN tandem.module_pairs mp ON cl.table_oid IN (mp.pipeline_table::oid, mp.crm_table::oid)
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
       (SELECT max(r.finished_at) FROM tandem.runs r WHERE r.integration_id = t.integration_id) AS last_pass_at,
       t.initial_sync_progress
  FROM tandem.tabs t
  JOIN tandem.integrations i ON i.integration_id = t.integration_id;
COMMENT ON VIEW tandem.tab_status IS 'Each tab of each integration: its state, whether the initial sync is complete, linked records, changes not yet synced, records waiting for a parent, open record errors, conflicts decided, and the last pass.';

CREATE VIEW tandem.pending_changes AS
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
 WHERE f.resolved_at IS NULL;
COMMENT ON VIEW tandem.pending_changes IS 'A dry run of the next pass: every record it would look at (changed since the cursor, waiting for a parent, or due for a retry) and what it would do.';

CREATE VIEW tandem.linked_records AS
SELECT i.name AS integration, mp.tab, l.module, l.link_id, l.pipeline_id, l.crm_id, l.origin, l.linked_at,
       m.synced_at AS last_synced_at,
       l.pipeline_deleted_at, l.crm_deleted_at,
       CASE WHEN l.pipeline_deleted_at IS NOT NULL AND l.crm_deleted_at IS NOT NULL THEN 'deleted in both apps'
            WHEN l.pipeline_deleted_at IS NOT NULL THEN 'deleted in the pipeline app, kept in the CRM app (R4)'
            WHEN l.crm_deleted_at IS NOT NULL THEN 'deleted in the CRM app, kept in the pipeline app (R4)'
            ELSE 'linked' END AS status
  FROM tandem.links l
  JOIN tandem.integrations i ON i.integration_id = l.integration_id
  JOIN tandem.module_pairs mp ON mp.integration_id = l.integration_id AND mp.module = l.module
  LEFT JOIN tandem.mirrors m ON m.link_id = l.link_id;
COMMENT ON VIEW tandem.linked_records IS 'Every ID link: which record of each app it pairs, how it came to be (matched or created from a side), when it last synced, and deletions that were not propagated (R4).';

CREATE VIEW tandem.conflicts AS
SELECT i.name AS integration, mp.tab, c.module, c.link_id, l.pipeline_id, l.crm_id, c.field,
       c.pipeline_value, c.crm_value, c.winner, c.policy, c.reason, c.decided_at
  FROM tandem.conflict_decisions c
  JOIN tandem.integrations i ON i.integration_id = c.integration_id
  JOIN tandem.links l ON l.link_id = c.link_id
  JOIN tandem.module_pairs mp ON mp.integration_id = c.integration_id AND mp.module = c.module;
COMMENT ON VIEW tandem.conflicts IS 'Fields changed differently in both apps: both values (canonical JSON), the winner (pipeline, crm, or none under skip), the policy and why (B2).';

CREATE VIEW tandem.record_errors AS
SELECT i.name AS integration, mp.tab, f.module, f.side AS from_side, f.record_id, f.operation,
       f.sqlstate, f.message, f.attempts, f.first_failed_at, f.last_failed_at, f.retry_at AS next_retry_at
  FROM tandem.record_failures f
  JOIN tandem.integrations i ON i.integration_id = f.integration_id
  JOIN tandem.module_pairs mp ON mp.integration_id = f.integration_id AND mp.module = f.module
 WHERE f.resolved_at IS NULL;
COMMENT ON VIEW tandem.record_errors IS 'Records that could not be written to the other app, with the reason; retried when they change and on a back-off (B6). Resolved errors leave this view.';

CREATE VIEW tandem.run_history AS
SELECT i.name AS integration, r.run_id, r.kind, r.started_at, r.finished_at,
       round(extract(epoch FROM r.finished_at - r.started_at) * 1000, 1) AS duration_ms,
       r.changes_read, r.matched, r.created_in_pipeline, r.created_in_crm,
       r.updated_in_pipeline, r.updated_in_crm, r.conflicts, r.errors, r.waiting
  FROM tandem.runs r
  JOIN tandem.integrations i ON i.integration_id = r.integration_id;
COMMENT ON VIEW tandem.run_history IS 'Every pass that did something: what it read, matched, created, updated, decided and could not write.';

CREATE VIEW tandem.event_history AS
SELECT i.name AS integration, e.event_id, e.type, e.tab, e.payload, e.created_at
  FROM tandem.events e
  JOIN tandem.integrations i ON i.integration_id = e.integration_id;
COMMENT ON VIEW tandem.event_history IS 'Notifications such as initial_sync_complete (R10), newest last.';
