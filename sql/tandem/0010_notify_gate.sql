-- 0010: a writer notifies only when a follower might otherwise sleep through
-- its change (issue 9).
--
-- PostgreSQL serializes the commits of notifying transactions (one lock for
-- the whole cluster, held through the commit). A writer may skip NOTIFY when
-- every follower is awake, that is, inside a call that passes until the log
-- is quiet and, before it returns, waits out every writer that skipped and
-- reads what they committed:
--   writer: logs its row; if every follower is awake, it takes
--           tandem._skipped_notify_lock() shared (until its transaction ends)
--           and, with a snapshot taken after the lock, checks again; still
--           all awake, it skips NOTIFY. Anything else notifies.
--   follower, to go idle: commits awake = false, takes the lock exclusively
--           (so every writer that skipped has ended), then passes once more.
-- A writer that takes the lock before the follower does is waited for and
-- read by that last pass; one that tries while the follower holds it fails
-- the try and notifies; one that takes it afterwards sees awake = false and
-- notifies. Every committed change therefore either notifies or is read by a
-- pass that starts after its commit (B1). Only READ COMMITTED writers skip:
-- a transaction snapshot would not see the follower's awake = false.
-- The followers' table is writable only by Tandem's role; an app session can
-- take the advisory lock, which at worst makes writers notify (held
-- exclusively) or keeps a follower polling until it ends (held shared).

CREATE UNLOGGED TABLE tandem._followers (
    backend_pid int CONSTRAINT _followers_pk PRIMARY KEY,
    awake boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tandem._followers IS 'Sessions listening on channel tandem (one row per bound handle). While every one is awake (passing until quiet, and reading what skipped writers committed before it sleeps), writers skip NOTIFY. Writable only by Tandem''s role.';
COMMENT ON COLUMN tandem._followers.awake IS 'True while the follower passes until quiet; it is set false, and skipped writers are waited out and read, before the follower sleeps.';
REVOKE ALL ON tandem._followers FROM PUBLIC;

-- The advisory lock that skipping writers hold shared until their transaction
-- ends (the one-bigint form, which never collides with the syncer locks'
-- two-int form).
CREATE FUNCTION tandem._skipped_notify_lock() RETURNS bigint
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT 1952804196::bigint $$;
COMMENT ON FUNCTION tandem._skipped_notify_lock() IS 'The advisory lock key writers that skip NOTIFY hold shared until they end; a follower takes it exclusively before it sleeps.';
REVOKE ALL ON FUNCTION tandem._skipped_notify_lock() FROM PUBLIC;

-- The row-level capture of 0009, with the gate.
CREATE OR REPLACE FUNCTION tandem._install_capture(target regclass, key_column text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $install$
DECLARE
    function_name text := tandem._capture_function_name(key_column);
    previous oid[];
    old_function oid;
    operation text;
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
            IF TG_OP = 'DELETE' THEN
                INSERT INTO tandem.change_log (table_oid, record_id, operation) VALUES (TG_RELID, (OLD.%I)::text, 'D');
            ELSE
                INSERT INTO tandem.change_log (table_oid, record_id, operation) VALUES (TG_RELID, (NEW.%I)::text, pg_catalog.left(TG_OP, 1));
            END IF;
            -- Separate statements: the second check needs a snapshot taken
            -- after the lock (tandem._followers, migration 0010).
            IF pg_catalog.current_setting('transaction_isolation') = 'read committed'
               AND NOT EXISTS (SELECT 1 FROM tandem._followers f WHERE NOT f.awake) THEN
                IF pg_catalog.pg_try_advisory_xact_lock_shared(tandem._skipped_notify_lock()) THEN
                    IF NOT EXISTS (SELECT 1 FROM tandem._followers f WHERE NOT f.awake) THEN
                        RETURN NULL;
                    END IF;
                END IF;
            END IF;
            PERFORM pg_catalog.pg_notify('tandem', '');
            RETURN NULL;
        END
        $body$
        $function$, function_name, key_column, key_column);
    EXECUTE format('REVOKE ALL ON FUNCTION tandem.%I() FROM PUBLIC', function_name);
    EXECUTE format('COMMENT ON FUNCTION tandem.%I() IS %L', function_name,
                   format('Tandem change capture (row-level) for tables keyed by %I: logs the changed key and notifies channel tandem unless every follower is awake.', key_column));

    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_verify BEFORE INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW
                    WHEN (COALESCE(pg_catalog.current_setting(''tandem.applying_xid'', true), '''') <> '''')
                    EXECUTE FUNCTION tandem._verify_applying()', target);
    FOREACH operation IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH ROW
                        WHEN (COALESCE(pg_catalog.current_setting(''tandem.applying_xid'', true), '''') = '''')
                        EXECUTE FUNCTION tandem.%I()',
                       '_900_tandem_capture_' || operation, upper(operation), target, function_name);
    END LOOP;

    INSERT INTO tandem.watched_tables (table_oid, table_name, key_column)
    VALUES (target, target, key_column)
    ON CONFLICT (table_oid) DO UPDATE SET table_name = EXCLUDED.table_name, key_column = EXCLUDED.key_column, installed_at = now();

    FOREACH old_function IN ARRAY coalesce(previous, '{}') LOOP
        PERFORM tandem._drop_unused_capture_function(old_function);
    END LOOP;
END
$install$;
COMMENT ON FUNCTION tandem._install_capture(regclass, text) IS 'Installs the row-level capture triggers (_900_tandem_capture_*) on an app table.';
REVOKE ALL ON FUNCTION tandem._install_capture(regclass, text) FROM PUBLIC;

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
