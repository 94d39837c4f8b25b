-- 0002: change capture and the record-by-record fallback of apply statements.

-- Installs the capture triggers on one app table. Statement-level triggers
-- with transition tables write the changed keys to tandem.change_log and
-- NOTIFY once per statement, not once per row, and only when no concurrent
-- writer is notifying already (the engine re-polls every 20 ms while busy,
-- so a change whose notification was left to another writer waits no longer). The engine's own writes run
-- with tandem.applying = 'on' and are not logged (B4: no echo).
-- The table and key column come from module_pairs, which were checked against
-- the catalog; they are still only used through regclass and %I.
CREATE FUNCTION tandem._install_capture(target regclass, key_column text) RETURNS void
LANGUAGE plpgsql AS $install$
DECLARE
    function_name text := format('_capture_%s', target::oid);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = target AND attname = key_column AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column %.% does not exist', target, key_column USING ERRCODE = 'undefined_column';
    END IF;
    EXECUTE format($function$
        CREATE OR REPLACE FUNCTION tandem.%I() RETURNS trigger
        LANGUAGE plpgsql AS $body$
        BEGIN
            IF current_setting('tandem.applying', true) = 'on' THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'DELETE' THEN
                INSERT INTO tandem.change_log (table_oid, record_id, operation)
                SELECT %s, (o.%I)::text, 'D' FROM old_rows o;
            ELSE
                INSERT INTO tandem.change_log (table_oid, record_id, operation)
                SELECT %s, (n.%I)::text, left(TG_OP, 1) FROM new_rows n;
            END IF;
            -- PostgreSQL serializes the commits of notifying transactions. One
            -- notification wakes the engine, and it reads everything committed:
            -- of the writers committing at the same moment, only the one holding
            -- the gate (a transaction advisory lock) notifies.
            IF FOUND AND pg_try_advisory_xact_lock(1952804196, 0) THEN
                PERFORM pg_notify('tandem', '');
            END IF;
            RETURN NULL;
        END
        $body$
        $function$, function_name, target::oid, key_column, target::oid, key_column);
    EXECUTE format('COMMENT ON FUNCTION tandem.%I() IS %L', function_name,
                   format('Tandem change capture for %s: logs changed keys and notifies channel tandem.', target));

    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_insert ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_update ON %s', target);
    EXECUTE format('DROP TRIGGER IF EXISTS _900_tandem_capture_delete ON %s', target);
    EXECUTE format('CREATE TRIGGER _900_tandem_capture_insert AFTER INSERT ON %s
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE TRIGGER _900_tandem_capture_update AFTER UPDATE ON %s
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);
    EXECUTE format('CREATE TRIGGER _900_tandem_capture_delete AFTER DELETE ON %s
                    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tandem.%I()', target, function_name);

    INSERT INTO tandem.watched_tables (table_oid, table_name, key_column)
    VALUES (target::oid, target, key_column)
    ON CONFLICT (table_oid) DO UPDATE SET key_column = EXCLUDED.key_column, installed_at = now();
END
$install$;
COMMENT ON FUNCTION tandem._install_capture(regclass, text) IS 'Installs the statement-level capture triggers (_900_tandem_capture_*) on an app table.';

-- Runs an apply statement once per row of its work table, each in its own
-- subtransaction, and returns the rows that failed with the reason. Used only
-- when the set-based statement failed: one bad record must not stop the batch
-- (B6). The statement takes the row's key as $1. Serialization failures,
-- deadlocks and errors in the statement itself (class 42) are not record
-- errors: they abort the pass.
CREATE FUNCTION tandem._apply_each(statement text, work regclass, key_column text)
RETURNS TABLE (failed_key text, failed_sqlstate text, failed_message text)
LANGUAGE plpgsql AS $apply$
DECLARE
    current_key text;
    state text;
    message text;
    detail text;
BEGIN
    FOR current_key IN EXECUTE format('SELECT (%I)::text FROM %s ORDER BY 1', key_column, work) LOOP
        BEGIN
            EXECUTE statement USING current_key;
        EXCEPTION
            WHEN serialization_failure OR deadlock_detected OR query_canceled
                 OR syntax_error_or_access_rule_violation OR insufficient_resources OR internal_error THEN
                RAISE;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
                failed_key := current_key;
                failed_sqlstate := state;
                failed_message := message || CASE WHEN coalesce(detail, '') <> '' THEN ' (' || detail || ')' ELSE '' END;
                RETURN NEXT;
        END;
    END LOOP;
END
$apply$;
COMMENT ON FUNCTION tandem._apply_each(text, regclass, text) IS 'Record-by-record fallback of a failed set-based apply: returns the records that cannot be written and why (B6).';
