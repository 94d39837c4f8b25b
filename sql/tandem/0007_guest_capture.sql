-- 0007: Tandem as a guest in a shared database (B10).
--
-- * Change capture runs with Tandem's rights (SECURITY DEFINER, owned by the
--   role that ran `install`) and a pinned search_path: the apps' roles write
--   their tables as before and need no grant on schema tandem.
-- * Echo suppression (B4) is a row in tandem._applying, which only Tandem's
--   role can write, instead of a setting any session could switch on.
-- * Every transaction that logs a change notifies (B1): no gate, so no
--   committed change waits for someone else's notification.
-- * Triggers find their table at run time (TG_RELID) and the change log and
--   watched tables store regclass, so a dump restored into another database
--   (new OIDs) keeps syncing.
-- * No function of schema tandem is executable by PUBLIC.

-- The transactions of sync passes in progress. The engine inserts its own
-- transaction id at the start of a pass that writes and deletes it before
-- COMMIT, so no other session ever sees a row. Only Tandem's role can write
-- it: no app session can make its own writes look like the engine's.
CREATE UNLOGGED TABLE tandem._applying (
    xid xid8 CONSTRAINT _applying_pk PRIMARY KEY
);
COMMENT ON TABLE tandem._applying IS 'Transaction ids of sync passes in progress (inserted and deleted within the pass): capture skips their writes, so the engine''s own writes never come back as changes (B4). Writable only by Tandem''s role.';
REVOKE ALL ON tandem._applying FROM PUBLIC;

-- regclass, not oid: pg_dump writes the table's name, and a restore resolves
-- it to the new OID. The two views that read the column are recreated as they
-- were (a column used by a view cannot change type).
DROP VIEW tandem.pending_changes;
DROP VIEW tandem.tab_status;
ALTER TABLE tandem.change_log ALTER COLUMN table_oid TYPE regclass;
ALTER TABLE tandem.watched_tables ALTER COLUMN table_oid TYPE regclass;
COMMENT ON COLUMN tandem.change_log.table_oid IS 'The changed table (regclass: a dump and restore keeps it pointing at the same table).';
COMMENT ON COLUMN tandem.watched_tables.table_oid IS 'The watched table (regclass, as table_name: a dump and restore keeps it pointing at the same table).';

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

-- One capture function per key column name, shared by every table keyed by a
-- column of that name: the table comes from TG_RELID at run time, so nothing
-- in the function (or its name) depends on an OID.
CREATE FUNCTION tandem._capture_function_name(key_column text) RETURNS text
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN key_column ~ '^[a-z_][a-z0-9_]{0,40}$' THEN '_capture_key_' || key_column
                ELSE '_capture_hash_' || md5(key_column) END
$$;
COMMENT ON FUNCTION tandem._capture_function_name(text) IS 'The name of the capture trigger function for tables keyed by a column of this name (a hash when the name is long or unusual, so that names never collide).';

-- Installs the statement-level capture triggers on one app table. They log the
-- changed keys to tandem.change_log and NOTIFY tandem in every transaction
-- that logs something (PostgreSQL sends one notification per transaction and
-- channel/payload, however many statements notify). The engine's own writes
-- (its transaction id in tandem._applying) are not logged (B4).
-- CREATE OR REPLACE TRIGGER needs only the TRIGGER privilege on the table;
-- DROP TRIGGER would need its ownership.
CREATE OR REPLACE FUNCTION tandem._install_capture(target regclass, key_column text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $install$
DECLARE
    function_name text := tandem._capture_function_name(key_column);
    previous oid[];
    old_function oid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                    WHERE attrelid = target AND attname = key_column AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column %.% does not exist', target, key_column USING ERRCODE = 'undefined_column';
    END IF;
    SELECT array_agg(DISTINCT tgfoid) INTO previous FROM pg_catalog.pg_trigger
     WHERE tgrelid = target AND tgname IN ('_900_tandem_capture_insert', '_900_tandem_capture_update', '_900_tandem_capture_delete');

    EXECUTE format($function$
        CREATE OR REPLACE FUNCTION tandem.%I() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        BEGIN
            IF EXISTS (SELECT 1 FROM tandem._applying a WHERE a.xid = pg_catalog.pg_current_xact_id_if_assigned()) THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'DELETE' THEN
                INSERT INTO tandem.change_log (table_oid, record_id, operation)
                SELECT TG_RELID, (o.%I)::text, 'D' FROM old_rows o;
            ELSE
                INSERT INTO tandem.change_log (table_oid, record_id, operation)
                SELECT TG_RELID, (n.%I)::text, pg_catalog.left(TG_OP, 1) FROM new_rows n;
            END IF;
            IF FOUND THEN
                PERFORM pg_catalog.pg_notify('tandem', '');
            END IF;
            RETURN NULL;
        END
        $body$
        $function$, function_name, key_column, key_column);
    EXECUTE format('REVOKE ALL ON FUNCTION tandem.%I() FROM PUBLIC', function_name);
    EXECUTE format('COMMENT ON FUNCTION tandem.%I() IS %L', function_name,
                   format('Tandem change capture for tables keyed by %I: logs changed keys and notifies channel tandem.', key_column));

    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_insert AFTER INSERT ON %s
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_update AFTER UPDATE ON %s
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_delete AFTER DELETE ON %s
                    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);

    INSERT INTO tandem.watched_tables (table_oid, table_name, key_column)
    VALUES (target, target, key_column)
    ON CONFLICT (table_oid) DO UPDATE SET table_name = EXCLUDED.table_name, key_column = EXCLUDED.key_column, installed_at = now();

    -- A function the triggers used before (another key column, or an older
    -- per-OID function) goes once no trigger uses it.
    FOREACH old_function IN ARRAY coalesce(previous, '{}') LOOP
        PERFORM tandem._drop_unused_capture_function(old_function);
    END LOOP;
END
$install$;
COMMENT ON FUNCTION tandem._install_capture(regclass, text) IS 'Installs the statement-level capture triggers (_900_tandem_capture_*) on an app table.';

CREATE FUNCTION tandem._drop_unused_capture_function(function_oid oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                WHERE p.oid = function_oid AND p.pronamespace = 'tandem'::regnamespace AND p.proname LIKE '\_capture\_%')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgfoid = function_oid) THEN
        EXECUTE format('DROP FUNCTION %s', function_oid::regprocedure);
    END IF;
END
$$;
COMMENT ON FUNCTION tandem._drop_unused_capture_function(oid) IS 'Drops a capture trigger function of schema tandem that no trigger uses any more.';

-- Removes the capture triggers from an app table, and their function when no
-- other table uses it. DROP TRIGGER needs the ownership of the table.
CREATE OR REPLACE FUNCTION tandem._remove_capture(target regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    used oid[];
    old_function oid;
BEGIN
    SELECT array_agg(DISTINCT tgfoid) INTO used FROM pg_catalog.pg_trigger
     WHERE tgrelid = target AND tgname IN ('_900_tandem_capture_insert', '_900_tandem_capture_update', '_900_tandem_capture_delete');
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_insert ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_update ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_delete ON %s', target);
    FOREACH old_function IN ARRAY coalesce(used, '{}') LOOP
        PERFORM tandem._drop_unused_capture_function(old_function);
    END LOOP;
END
$$;
COMMENT ON FUNCTION tandem._remove_capture(regclass) IS 'Removes the capture triggers (_900_tandem_capture_*) from an app table, and their function once no table uses it.';

-- The other helpers run with Tandem's rights and a pinned search_path too.
-- Every name in them is schema-qualified or in pg_catalog; the statements
-- _apply_each runs are the engine's, which qualify app tables and reach its
-- work tables through pg_temp.
ALTER FUNCTION tandem._apply_each(text, regclass, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION tandem._mapped_value(jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION tandem._map_value(bigint, text, text, text, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Tables already watched get the new capture (and lose their per-OID function).
DO $$
DECLARE
    watched record;
BEGIN
    FOR watched IN SELECT w.table_name, w.key_column FROM tandem.watched_tables w
                    WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = w.table_name) LOOP
        PERFORM tandem._install_capture(watched.table_name, watched.key_column);
    END LOOP;
END
$$;

-- Nothing in schema tandem is executable by PUBLIC: only Tandem's role (the
-- owner) calls these functions, and triggers fire without an EXECUTE check.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'tandem'::regnamespace LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
