-- 0013: updates and deletes are captured by a BEFORE ROW trigger without a
-- WHEN clause (issue 9).
--
-- Measured in one backend (UPDATE + COMMIT of one row of pipeline.contacts,
-- synchronous_commit off, five interleaved rounds): the same capture function
-- as an AFTER ROW trigger with 0009's WHEN clause cost about 20 µs more per
-- statement than as a BEFORE ROW trigger that reads the setting itself. An
-- AFTER ROW trigger queues an event and fetches the row again at the end of
-- the statement, and a trigger's WHEN clause is prepared again for every
-- statement; for the single-row statements apps write all day that is more
-- than the trigger's own work.
--
-- * _900_tandem_capture_update and _900_tandem_capture_delete fire BEFORE
--   each row, with no WHEN clause. The function recognizes a pass's own
--   writes itself: tandem.applying_xid set and the transaction listed in
--   tandem._applying (B4); a setting anyone else made is cleared, as 0009's
--   check does, and the row is logged. The key logged is OLD's, which no
--   later trigger can change, and NEW's as well when the statement changed
--   the key. A later BEFORE trigger that skips the row leaves a log entry
--   for a row that did not change: the pass finds nothing to do for it.
-- * Inserts keep 0009's AFTER ROW trigger with its WHEN clause and the
--   BEFORE ROW check, now on INSERT only: the key of a new row may still be
--   set by another BEFORE trigger that fires after Tandem's, so it is read
--   once every BEFORE trigger has run.
-- * The function returns NEW (OLD for a delete) whichever way it is fired:
--   a BEFORE trigger that returned NULL would drop the app's write.
-- * The notify gate of 0010 reads a counter instead of tandem._followers:
--   the sequence tandem._sleeping_followers holds how many followers are
--   not awake. A writer skips NOTIFY when it is READ COMMITTED, got the
--   skipped-writers lock shared, and then reads 0. Its two reads of the
--   followers' table (an executor start each) cost it about 8 µs of CPU per
--   statement; pg_sequence_last_value reads one buffer.
--   A follower changes its row and sets the counter from a count of the
--   rows in one transaction that holds tandem._followers in SHARE ROW
--   EXCLUSIVE mode (only Tandem's role can lock it): the counts of two
--   followers never interleave, and each counts what the other committed.
--   setval is not transactional, so the counter changes before the commit:
--   lowered, it is already true of a follower that woke (it passes again
--   before it sleeps) or left; raised, too high only makes writers notify.
--   Going to
--   sleep, a follower sets the counter to at least 1 before it waits out the
--   writers holding the lock shared (0010), so a writer that read 0 either
--   holds the lock and is read by the follower's last pass, or read the
--   counter before the follower went to sleep. A counter that is not set
--   (NULL), or stays above the truth after a follower died asleep, makes
--   writers notify until a follower counts again.

CREATE SEQUENCE tandem._sleeping_followers MINVALUE 0;
COMMENT ON SEQUENCE tandem._sleeping_followers IS 'How many rows of tandem._followers are not awake, set by the followers (setval) each time one changes, in the same transaction, while it holds tandem._followers in SHARE ROW EXCLUSIVE mode. Writers skip NOTIFY only while it reads 0.';
REVOKE ALL ON SEQUENCE tandem._sleeping_followers FROM PUBLIC;
COMMENT ON TABLE tandem._followers IS 'Sessions listening on channel tandem (one row per bound handle). While every one is awake (passing until quiet, and reading what skipped writers committed before it sleeps), writers skip NOTIFY: they read the count of the others in tandem._sleeping_followers, which the followers set whenever they change this table. Writable only by Tandem''s role.';
SELECT pg_catalog.setval('tandem._sleeping_followers', (SELECT count(*) FROM tandem._followers), true);

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
        CREATE OR REPLACE FUNCTION tandem.%1$I() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        DECLARE
            skip_notify boolean := false;
        BEGIN
            -- Fired BEFORE (update, delete) there is no WHEN clause: a pass's
            -- own write is recognized here (migration 0013).
            IF TG_WHEN = 'BEFORE' AND pg_catalog.current_setting('tandem.applying_xid', true) <> '' THEN
                IF EXISTS (SELECT 1 FROM tandem._applying a WHERE a.xid = pg_catalog.pg_current_xact_id_if_assigned()) THEN
                    IF TG_OP = 'DELETE' THEN
                        RETURN OLD;
                    END IF;
                    RETURN NEW;
                END IF;
                PERFORM pg_catalog.set_config('tandem.applying_xid', '', true);
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO tandem.change_log (table_oid, record_id, operation) VALUES (TG_RELID, (NEW.%2$I)::text, 'I');
            ELSE
                INSERT INTO tandem.change_log (table_oid, record_id, operation) VALUES (TG_RELID, (OLD.%2$I)::text, pg_catalog.left(TG_OP, 1));
                IF TG_OP = 'UPDATE' AND NEW.%2$I IS DISTINCT FROM OLD.%2$I THEN
                    INSERT INTO tandem.change_log (table_oid, record_id, operation) VALUES (TG_RELID, (NEW.%2$I)::text, 'U');
                END IF;
            END IF;
            -- The counter is read after the lock is held (migration 0013).
            IF pg_catalog.current_setting('transaction_isolation') = 'read committed'
               AND pg_catalog.pg_try_advisory_xact_lock_shared(tandem._skipped_notify_lock()) THEN
                skip_notify := pg_catalog.pg_sequence_last_value('tandem._sleeping_followers'::pg_catalog.regclass) IS NOT DISTINCT FROM 0;
            END IF;
            IF NOT skip_notify THEN
                PERFORM pg_catalog.pg_notify('tandem', '');
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END
        $body$
        $function$, function_name, key_column);
    EXECUTE format('REVOKE ALL ON FUNCTION tandem.%I() FROM PUBLIC', function_name);
    EXECUTE format('COMMENT ON FUNCTION tandem.%I() IS %L', function_name,
                   format('Tandem change capture (row-level) for tables keyed by %I: logs the changed key and notifies channel tandem unless every follower is awake.', key_column));

    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_verify BEFORE INSERT ON %s FOR EACH ROW
                    WHEN (COALESCE(pg_catalog.current_setting(''tandem.applying_xid'', true), '''') <> '''')
                    EXECUTE FUNCTION tandem._verify_applying()', target);
    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_insert AFTER INSERT ON %s FOR EACH ROW
                    WHEN (COALESCE(pg_catalog.current_setting(''tandem.applying_xid'', true), '''') = '''')
                    EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_update BEFORE UPDATE ON %s FOR EACH ROW
                    EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE OR REPLACE TRIGGER _900_tandem_capture_delete BEFORE DELETE ON %s FOR EACH ROW
                    EXECUTE FUNCTION tandem.%I()', target, function_name);

    INSERT INTO tandem.watched_tables (table_oid, table_name, key_column)
    VALUES (target, target, key_column)
    ON CONFLICT (table_oid) DO UPDATE SET table_name = EXCLUDED.table_name, key_column = EXCLUDED.key_column, installed_at = now();

    FOREACH old_function IN ARRAY coalesce(previous, '{}') LOOP
        PERFORM tandem._drop_unused_capture_function(old_function);
    END LOOP;
END
$install$;
COMMENT ON FUNCTION tandem._install_capture(regclass, text) IS 'Installs the row-level capture triggers (_900_tandem_capture_*) on an app table: BEFORE UPDATE and DELETE, AFTER INSERT with a BEFORE INSERT check.';
REVOKE ALL ON FUNCTION tandem._install_capture(regclass, text) FROM PUBLIC;

COMMENT ON FUNCTION tandem._verify_applying() IS 'Keeps tandem.applying_xid set only in a transaction listed in tandem._applying (writable only by Tandem''s role), before the AFTER INSERT capture trigger''s WHEN clause reads it: no app session can switch capture off (B4). Updates and deletes are checked by the capture function itself.';

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
