-- 0012: compact mirrors (issue 9).
--
-- The three-way merge (B2) asks of a mirror only whether each side changed a
-- field since the last sync: PostgreSQL's 64-bit hash of the field's
-- canonical jsonb value (jsonb_hash_extended) answers that as well as the
-- value did. A conflict takes its values from the apps, never from the
-- mirror. A mirror is now one array of hashes, the pipeline side's fields
-- first, then the CRM side's, in the order of its layout; a NULL element is
-- no value. Kept for every field of both sides as jsonb values, the mirrors
-- outweighed the apps' own tables. (The hash is the server's: a mirror moved
-- to a server of another byte order would read as changed everywhere.)
--
-- A layout is the list of a module's field names the hashes follow; the
-- engine adds one when it binds to a configuration whose list is new. An edit
-- sync that stops mapping fields marks them forgotten in every layout that
-- holds them: their hashes say nothing true any more (the merge reads them as
-- no value), and a layout with forgotten fields is never reused.
--
-- Mirrors written before this migration are converted here: one layout per
-- module pair (its mapped fields by name), the hashes of the values they
-- held. The values themselves are dropped.

CREATE TABLE tandem.mirror_layouts (
    layout_id       serial CONSTRAINT mirror_layouts_pk PRIMARY KEY,
    integration_id  bigint NOT NULL CONSTRAINT mirror_layouts_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    fields          text[] NOT NULL,
    forgotten       text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mirror_layouts_current ON tandem.mirror_layouts (integration_id, module, fields) WHERE forgotten = '{}';
COMMENT ON TABLE tandem.mirror_layouts IS 'The field order of compact mirrors, per module: tandem.mirrors.hashes holds the pipeline side''s fields in this order, then the CRM side''s.';
COMMENT ON COLUMN tandem.mirror_layouts.forgotten IS 'Fields an edit sync stopped mapping: their hashes in mirrors of this layout are read as no value.';

ALTER TABLE tandem.mirrors
    ADD COLUMN layout_id int,
    ADD COLUMN hashes bigint[],
    ALTER COLUMN pipeline_state DROP NOT NULL,
    ALTER COLUMN crm_state DROP NOT NULL;

-- The conversion. A mirror whose link is gone (there is no foreign key since
-- 0011) says nothing and goes.
INSERT INTO tandem.mirror_layouts (integration_id, module, fields)
SELECT mp.integration_id, mp.module, coalesce(array_agg(fm.field ORDER BY fm.field) FILTER (WHERE fm.field IS NOT NULL), '{}')
  FROM tandem.module_pairs mp
  LEFT JOIN tandem.field_mappings fm ON fm.integration_id = mp.integration_id AND fm.module = mp.module
 GROUP BY mp.integration_id, mp.module;
DELETE FROM tandem.mirrors m WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.link_id = m.link_id);
UPDATE tandem.mirrors m
   SET layout_id = ml.layout_id,
       hashes = ARRAY(SELECT jsonb_hash_extended(m.pipeline_state -> u.f, 0) FROM unnest(ml.fields) WITH ORDINALITY u(f, n) ORDER BY u.n)
             || ARRAY(SELECT jsonb_hash_extended(m.crm_state -> u.f, 0) FROM unnest(ml.fields) WITH ORDINALITY u(f, n) ORDER BY u.n),
       pipeline_state = NULL, crm_state = NULL
  FROM tandem.links l
  JOIN tandem.mirror_layouts ml ON ml.integration_id = l.integration_id AND ml.module = l.module
 WHERE l.link_id = m.link_id;
DELETE FROM tandem.mirrors WHERE layout_id IS NULL;

ALTER TABLE tandem.mirrors
    ALTER COLUMN layout_id SET NOT NULL,
    ALTER COLUMN hashes SET NOT NULL,
    DROP COLUMN pipeline_state,
    DROP COLUMN crm_state;
COMMENT ON TABLE tandem.mirrors IS 'Record mirrors: for every mapped field of both sides as last synced, a hash of its canonical form (lookups as link ids, owners as emails), in the order of its layout. The base of the field-level three-way merge (B2).';
COMMENT ON COLUMN tandem.mirrors.hashes IS 'jsonb_hash_extended(canonical value, 0) of each field: the pipeline side''s in layout order, then the CRM side''s; NULL: no value.';
COMMENT ON COLUMN tandem.mirrors.layout_id IS 'The tandem.mirror_layouts row that gives the field order of hashes.';
