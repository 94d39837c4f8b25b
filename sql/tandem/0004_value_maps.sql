-- 0004: value maps, for fields whose values differ between the apps (a deal's
-- stage): per context (the pipeline) and direction, source value -> target value.

CREATE TABLE tandem.value_maps (
    integration_id  bigint NOT NULL CONSTRAINT value_maps_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    field           text NOT NULL,
    direction       text NOT NULL CONSTRAINT value_maps_direction_check CHECK (direction IN ('to_crm', 'to_pipeline')),
    context         text NOT NULL,
    source_value    text NOT NULL,
    target_value    text NOT NULL,
    CONSTRAINT value_maps_pk PRIMARY KEY (integration_id, module, field, direction, context, source_value)
);
COMMENT ON TABLE tandem.value_maps IS 'Value maps of mapped fields (stages per pipeline): what a value of one app becomes in the other, per context and direction. Validation makes sure every allowed value has one.';

-- A pipeline-app value in canonical form is the CRM value it maps to, or
-- {"unmapped": value, "context": ...} when it has none: writing that fails
-- the record with a clear reason (B6) instead of writing NULL.
CREATE FUNCTION tandem._mapped_value(canonical jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(canonical) = 'object' THEN
        RAISE EXCEPTION 'pipeline app value ''%'' (in %) has no mapping to the CRM app',
              canonical ->> 'unmapped', canonical ->> 'context'
              USING ERRCODE = 'data_exception', HINT = 'add it to the field''s value map and configure again';
    END IF;
    RETURN canonical #>> '{}';
END
$$;
COMMENT ON FUNCTION tandem._mapped_value(jsonb) IS 'The CRM value of a mapped field''s canonical form; fails the record when the pipeline value has no mapping.';

CREATE FUNCTION tandem._map_value(integration bigint, module_name text, field_name text, context_value text, crm_value text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    mapped text;
BEGIN
    IF crm_value IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT vm.target_value INTO mapped
      FROM tandem.value_maps vm
     WHERE vm.integration_id = integration AND vm.module = module_name AND vm.field = field_name
       AND vm.direction = 'to_pipeline' AND vm.context = context_value AND vm.source_value = crm_value;
    IF mapped IS NULL THEN
        RAISE EXCEPTION 'CRM app value ''%'' (in %) of %.% has no mapping to the pipeline app',
              crm_value, context_value, module_name, field_name
              USING ERRCODE = 'data_exception', HINT = 'add it to the field''s value map and configure again';
    END IF;
    RETURN mapped;
END
$$;
COMMENT ON FUNCTION tandem._map_value(bigint, text, text, text, text) IS 'The pipeline-app value of a CRM value of a mapped field, in its context; fails the record when there is none.';
