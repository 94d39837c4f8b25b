-- 0006: record errors name where a record failed, never what it contained.
--
-- tandem.record_failures.message (and the tandem.record_errors view over it)
-- is read by whoever may read Tandem's reports, and kept after the record is
-- fixed. Until now _apply_each appended PostgreSQL's DETAIL to it, and the
-- DETAIL of a constraint error prints the failing row ("Failing row contains
-- (…, ada@example.org, +44 20 7946 0000, …)"), or the key value of a unique or
-- foreign key. Some messages carry values themselves ("invalid input syntax
-- for type integer: \"…\"", "value \"…\" is out of range for type integer"),
-- and an app's own trigger may RAISE any text it likes.
--
-- So a record error now keeps: the SQLSTATE (its own column), the names that
-- PostgreSQL reports with the error (schema, table, column, constraint, data
-- type: GET STACKED DIAGNOSTICS), and MESSAGE_TEXT only for the conditions
-- whose text is made of names alone (listed below). For any other condition
-- the text is the condition's name and, when the error came from a function
-- (an app trigger), that function's name. Which record failed is in
-- record_errors.record_id: whoever may read the app's table can look at the
-- values there.
--
-- One exception, on purpose: Tandem's own value-map errors (0004,
-- tandem._mapped_value and tandem._map_value) keep their text, which names the
-- unmapped value and its context ("CRM app value 'Legal Review' (in Standard)
-- of deals.stage has no mapping"). That value is a stage and the context a
-- pipeline: names the organisation gave its sales process, which the apps
-- keep in their stage tables (the records reference them by foreign key).
-- They describe no person, and the message is of no use without them: the fix
-- is to add exactly that value to the field's value map.

CREATE OR REPLACE FUNCTION tandem._error_text(
    state text, message text, schema_name text, table_name text, column_name text,
    constraint_name text, datatype_name text, context text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $error_text$
DECLARE
    -- The innermost frame, when the error is a RAISE in PL/pgSQL: its text is
    -- whatever that function wrote.
    raised_by text := substring(split_part(coalesce(context, ''), E'\n', 1)
                                FROM '^PL/pgSQL function ([^ (]+)\(.* at RAISE$');
    -- The innermost function the error happened in, other than the fallback
    -- itself: an app trigger, usually.
    in_function text := (SELECT m[1] FROM regexp_matches(coalesce(context, ''), 'PL/pgSQL function ([^ (]+)\(', 'g') AS m
                          WHERE m[1] <> 'tandem._apply_each' LIMIT 1);
    text_out text;
    names text;
BEGIN
    IF raised_by IN ('tandem._mapped_value', 'tandem._map_value') THEN
        -- Tandem's value-map errors: a stage and a pipeline name (see above).
        text_out := message;
    ELSIF state IN (
        '23502',  -- not_null_violation: null value in column "c" of relation "t" violates not-null constraint
        '23503',  -- foreign_key_violation: insert or update on table "t" violates foreign key constraint "k"
        '23505',  -- unique_violation: duplicate key value violates unique constraint "k"
        '23514',  -- check_violation: new row for relation "t" violates check constraint "k"
        '23P01',  -- exclusion_violation: conflicting key value violates exclusion constraint "k"
        '23001',  -- restrict_violation: ... violates RESTRICT setting of foreign key constraint "k" on table "t"
        '22001',  -- string_data_right_truncation: value too long for type character varying(n)
        '21000')  -- cardinality_violation: more than one row returned by a subquery used as an expression
       AND raised_by IS NULL THEN
        -- PostgreSQL's own texts for these conditions name objects, not values
        -- (the values are in DETAIL, which is never kept). The same SQLSTATE
        -- raised by a function may carry any text: that one is not kept.
        text_out := message;
    ELSE
        text_out := CASE state
            WHEN '22P02' THEN 'invalid input syntax for the column''s type'
            WHEN '22003' THEN 'numeric value out of range'
            WHEN '22007' THEN 'invalid date or time format'
            WHEN '22008' THEN 'date or time field out of range'
            WHEN '22012' THEN 'division by zero'
            WHEN '22021' THEN 'character not in the database encoding'
            WHEN '22P05' THEN 'character that cannot be translated to the database encoding'
            WHEN '22004' THEN 'null value not allowed'
            WHEN '22023' THEN 'invalid parameter value'
            WHEN '23000' THEN 'integrity constraint violation'
            WHEN '23502' THEN 'not-null violation'
            WHEN '23503' THEN 'foreign key violation'
            WHEN '23505' THEN 'unique violation'
            WHEN '23514' THEN 'check violation'
            WHEN 'P0001' THEN 'error raised'
            ELSE 'error'
        END || ' (SQLSTATE ' || coalesce(state, '?') || ')'
            || CASE WHEN in_function IS NOT NULL THEN ' in function ' || in_function ELSE '' END
            || '; the server''s message is not kept because it may contain values of the record';
    END IF;
    names := concat_ws(', ',
        CASE WHEN coalesce(table_name, '') <> '' THEN
             'table ' || CASE WHEN coalesce(schema_name, '') <> '' THEN schema_name || '.' ELSE '' END || table_name END,
        CASE WHEN coalesce(column_name, '') <> '' THEN 'column ' || column_name END,
        CASE WHEN coalesce(constraint_name, '') <> '' THEN 'constraint ' || constraint_name END,
        CASE WHEN coalesce(datatype_name, '') <> '' THEN 'type ' || datatype_name END);
    RETURN text_out || CASE WHEN names <> '' THEN ' [' || names || ']' ELSE '' END;
END
$error_text$;
COMMENT ON FUNCTION tandem._error_text(text, text, text, text, text, text, text, text) IS
    'The text kept for a record error: names (table, column, constraint, type), never row values (0006).';

-- The function is replaced whole by CREATE OR REPLACE: its owner and grants
-- stay, but SECURITY DEFINER and SET clauses would be reset. Whatever an
-- earlier migration set is read first and set again afterwards.
CREATE TEMPORARY TABLE _tandem_0006_apply_each_settings ON COMMIT DROP AS
SELECT p.prosecdef AS security_definer, p.proconfig AS settings
  FROM pg_proc p
 WHERE p.oid = 'tandem._apply_each(text, regclass, text)'::regprocedure;

CREATE OR REPLACE FUNCTION tandem._apply_each(statement text, work regclass, key_column text)
RETURNS TABLE (failed_key text, failed_sqlstate text, failed_message text)
LANGUAGE plpgsql AS $apply$
DECLARE
    current_key text;
    state text;
    message text;
    schema_name text;
    table_name text;
    column_name text;
    constraint_name text;
    datatype_name text;
    context text;
BEGIN
    FOR current_key IN EXECUTE format('SELECT (%I)::text FROM %s ORDER BY 1', key_column, work) LOOP
        BEGIN
            EXECUTE statement USING current_key;
        EXCEPTION
            WHEN serialization_failure OR deadlock_detected OR query_canceled
                 OR syntax_error_or_access_rule_violation OR insufficient_resources OR internal_error THEN
                RAISE;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                    schema_name = SCHEMA_NAME, table_name = TABLE_NAME, column_name = COLUMN_NAME,
                    constraint_name = CONSTRAINT_NAME, datatype_name = PG_DATATYPE_NAME,
                    context = PG_EXCEPTION_CONTEXT;
                failed_key := current_key;
                failed_sqlstate := state;
                failed_message := tandem._error_text(state, message, schema_name, table_name, column_name,
                                                     constraint_name, datatype_name, context);
                RETURN NEXT;
        END;
    END LOOP;
END
$apply$;
COMMENT ON FUNCTION tandem._apply_each(text, regclass, text) IS 'Record-by-record fallback of a failed set-based apply: returns the records that cannot be written and why, by name and never by value (B6, 0006).';

DO $$
DECLARE
    kept record;
    setting text;
    name text;
    value text;
BEGIN
    SELECT * INTO kept FROM _tandem_0006_apply_each_settings;
    IF kept.security_definer THEN
        ALTER FUNCTION tandem._apply_each(text, regclass, text) SECURITY DEFINER;
    END IF;
    FOREACH setting IN ARRAY coalesce(kept.settings, '{}') LOOP
        name := split_part(setting, '=', 1);
        value := substr(setting, length(name) + 2);
        -- proconfig holds a list setting (search_path) as it is written in
        -- SET (tandem, pg_temp); any other value is set as one literal.
        BEGIN
            EXECUTE format('ALTER FUNCTION tandem._apply_each(text, regclass, text) SET %I = %s', name, value);
        EXCEPTION WHEN syntax_error THEN
            EXECUTE format('ALTER FUNCTION tandem._apply_each(text, regclass, text) SET %I = %L', name, value);
        END;
    END LOOP;
END
$$;

-- Errors recorded before this migration may hold row values: keep their
-- SQLSTATE, and replace the text with what it would be now, as far as it can
-- be known (the names were not kept then).
UPDATE tandem.record_failures
   SET message = CASE WHEN message LIKE '%has no mapping to the%' AND sqlstate = '22000' THEN message
                      ELSE tandem._error_text(sqlstate, regexp_replace(message, ' \(.*\)$', ''), NULL, NULL, NULL, NULL, NULL, NULL) END
 WHERE position('(' IN message) > 0 OR sqlstate NOT IN ('23502', '23503', '23505', '23514', '23P01', '23001', '22001', '21000');
