-- 0009: capture that costs writers little (issue 9).
--
-- * Row-level AFTER triggers replace the statement-level ones with transition
--   tables. Their WHEN clause skips the engine's own writes before PostgreSQL
--   queues an event or stores a tuple for them, so a pass's writes cost no
--   transition table and no trigger call.
-- * The WHEN clause reads a session setting, tandem.applying_xid, which any
--   session can set. It never decides alone: a BEFORE ROW trigger fires for
--   every row written while the setting is not empty and clears it unless the
--   transaction is listed in tandem._applying, which only Tandem's role can
--   write (B4). The AFTER trigger's WHEN clause is evaluated after the BEFORE
--   triggers ran, so a session that sets the setting itself is captured as
--   any other. The setting is set by a trigger on tandem._applying: the
--   engine's insert of its transaction id is all it takes.
-- * The change log is still written in the writer's transaction, and every
--   transaction that logs a change still notifies (B1).

-- Sets tandem.applying_xid for the rest of the transaction when a pass lists
-- its transaction id (SET LOCAL semantics: a rollback or the commit ends it).
CREATE FUNCTION tandem._announce_applying() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.set_config('tandem.applying_xid', NEW.xid::text, true);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION tandem._announce_applying() IS 'Sets tandem.applying_xid when a pass lists its transaction in tandem._applying, so that the capture triggers'' WHEN clause can skip its writes (checked by tandem._verify_applying).';
REVOKE ALL ON FUNCTION tandem._announce_applying() FROM PUBLIC;

CREATE TRIGGER _100_announce_applying AFTER INSERT ON tandem._applying
    FOR EACH ROW EXECUTE FUNCTION tandem._announce_applying();

-- Fires (BEFORE ROW, WHEN tandem.applying_xid is not empty) on every row a
-- transaction writes while the setting is on: it stays on only for a
-- transaction listed in tandem._applying. Anyone else's setting is cleared
-- before the capture trigger's WHEN clause reads it, so their row is logged.
CREATE FUNCTION tandem._verify_applying() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tandem._applying a WHERE a.xid = pg_catalog.pg_current_xact_id_if_assigned()) THEN
        PERFORM pg_catalog.set_config('tandem.applying_xid', '', true);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION tandem._verify_applying() IS 'Keeps tandem.applying_xid set only in a transaction listed in tandem._applying (writable only by Tandem''s role): no app session can switch capture off (B4).';
REVOKE ALL ON FUNCTION tandem._verify_applying() FROM PUBLIC;

-- Installs the capture triggers on one app table: three AFTER ROW triggers
-- (_900_tandem_capture_insert|update|delete) that log the row's key and
-- notify, unless tandem.applying_xid is set, and the BEFORE ROW trigger
-- _900_tandem_capture_verify that clears a setting not made by a pass.
-- PostgreSQL sends one notification per transaction and channel/payload,
-- however many rows notify. CREATE OR REPLACE TRIGGER needs only the TRIGGER
-- privilege on the table, and turns the statement-level triggers of 0007 into
-- these in place.
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
            PERFORM pg_catalog.pg_notify('tandem', '');
            RETURN NULL;
        END
        $body$
        $function$, function_name, key_column, key_column);
    EXECUTE format('REVOKE ALL ON FUNCTION tandem.%I() FROM PUBLIC', function_name);
    EXECUTE format('COMMENT ON FUNCTION tandem.%I() IS %L', function_name,
                   format('Tandem change capture (row-level) for tables keyed by %I: logs the changed key and notifies channel tandem.', key_column));

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

    -- A function the triggers used before (another key column) goes once no
    -- trigger uses it.
    FOREACH old_function IN ARRAY coalesce(previous, '{}') LOOP
        PERFORM tandem._drop_unused_capture_function(old_function);
    END LOOP;
END
$install$;
COMMENT ON FUNCTION tandem._install_capture(regclass, text) IS 'Installs the row-level capture triggers (_900_tandem_capture_*) on an app table.';
REVOKE ALL ON FUNCTION tandem._install_capture(regclass, text) FROM PUBLIC;

-- Removing capture as a guest, as 0008 does (the triggers are re-pointed at a
-- function made for this one call, and dropping it drops them), now with the
-- BEFORE trigger too. _verify_applying is shared and stays.
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
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = target AND t.tgname LIKE '\_900\_tandem\_capture\_%') THEN
        EXECUTE format('CREATE FUNCTION tandem.%I() RETURNS trigger LANGUAGE plpgsql AS %L', detached, 'BEGIN RETURN NULL; END');
        FOR capture IN SELECT t.tgname FROM pg_catalog.pg_trigger t
                        WHERE t.tgrelid = target
                          AND t.tgname IN ('_900_tandem_capture_insert', '_900_tandem_capture_update', '_900_tandem_capture_delete',
                                           '_900_tandem_capture_verify') LOOP
            EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()',
                           capture.tgname, target, detached);
        END LOOP;
        EXECUTE format('DROP FUNCTION tandem.%I() CASCADE', detached);
        FOREACH old_function IN ARRAY coalesce(used, '{}') LOOP
            PERFORM tandem._drop_unused_capture_function(old_function);
        END LOOP;
    END IF;
    DELETE FROM tandem.watched_tables w WHERE w.table_name = target;
END
$remove$;
COMMENT ON FUNCTION tandem._remove_capture(regclass) IS 'Removes the capture triggers (_900_tandem_capture_*) from an app table without needing its ownership, and their function once no table uses it.';
REVOKE ALL ON FUNCTION tandem._remove_capture(regclass) FROM PUBLIC;

COMMENT ON TABLE tandem.change_log IS 'Keys of changed rows, written by the row-level capture triggers in the writer''s transaction. Rows below every cursor are pruned.';

-- Tables already watched get the row-level triggers in place of 0007's.
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
