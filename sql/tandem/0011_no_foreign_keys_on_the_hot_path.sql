-- 0011: no foreign key of Tandem's own on the path of a pass (issue 9).
--
-- Links, mirrors, conflict decisions and run records are written by the engine
-- alone, in the transaction that writes what they refer to; their foreign keys
-- cost a referential check (and a queued trigger event) per row, 34,000 of them
-- in the initial sync of 10,000 records per module. What the ON DELETE CASCADE
-- did, purging an integration (R17), the engine now does itself, in one
-- transaction: tandem._purge_integration.

ALTER TABLE tandem.links DROP CONSTRAINT links_integration_fk;
ALTER TABLE tandem.mirrors DROP CONSTRAINT mirrors_link_fk;
ALTER TABLE tandem.conflict_decisions DROP CONSTRAINT conflict_decisions_link_fk;
ALTER TABLE tandem.conflict_decisions DROP CONSTRAINT conflict_decisions_integration_fk;
ALTER TABLE tandem.runs DROP CONSTRAINT runs_integration_fk;

CREATE FUNCTION tandem._purge_integration(target bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM tandem.mirrors m USING tandem.links l WHERE m.link_id = l.link_id AND l.integration_id = target;
    DELETE FROM tandem.conflict_decisions WHERE integration_id = target;
    DELETE FROM tandem.links WHERE integration_id = target;
    DELETE FROM tandem.runs WHERE integration_id = target;
    -- Everything else of the integration goes with it (ON DELETE CASCADE).
    DELETE FROM tandem.integrations WHERE integration_id = target;
$$;
REVOKE ALL ON FUNCTION tandem._purge_integration(bigint) FROM PUBLIC;
COMMENT ON FUNCTION tandem._purge_integration(bigint) IS 'Deletes an integration and everything Tandem kept of it: links, mirrors, conflict decisions and runs (which have no foreign key, 0011), the rest by cascade.';
