-- 0014: the change log's btree on xid goes; a block range index takes its
-- place (issue 9).
--
-- Every writer's capture inserted its key into change_log_xid_idx, and since
-- transaction ids only grow, every insert went to the btree's rightmost leaf:
-- one page that all writers lock exclusively in turn. Passes read the log
-- from a cursor's position (`xid >= position`), which needs an index only
-- when the log is long: when an integration's engine is stopped the log keeps
-- what it has not read, and another integration's passes must not scan it.
--
-- * xid_order is the same 64-bit transaction id as xid, as bigint
--   (txid_current() and pg_current_xact_id() are one number): PostgreSQL 15
--   has no block range operator class for xid8. Writers fill it by default,
--   as they fill xid.
-- * change_log_xid_order_brin summarizes each range of 128 heap pages by the
--   least and greatest xid_order in it. A writer appending to a range not yet
--   summarized writes nothing to the index; autosummarize asks autovacuum to
--   summarize a range once the table grows past it. A pass reading from its
--   position skips every summarized range whose greatest id is below it.
-- * Readers state the range on xid_order as well as on xid (the pass's read
--   and its pruning): the index answers the first, the second keeps the
--   meaning. A restored database's log is renumbered in both columns.

ALTER TABLE tandem.change_log ADD COLUMN xid_order bigint;
UPDATE tandem.change_log SET xid_order = xid::text::bigint;
ALTER TABLE tandem.change_log
    ALTER COLUMN xid_order SET DEFAULT pg_catalog.txid_current(),
    ALTER COLUMN xid_order SET NOT NULL;
COMMENT ON COLUMN tandem.change_log.xid_order IS 'xid as bigint, for the block range index change_log_xid_order_brin (PostgreSQL 15 has no block range operator class for xid8). Always equal to xid.';

DROP INDEX tandem.change_log_xid_idx;
CREATE INDEX change_log_xid_order_brin ON tandem.change_log USING brin (xid_order) WITH (autosummarize = on);
COMMENT ON INDEX tandem.change_log_xid_order_brin IS 'Lets a pass skip the part of the log below its cursor without a btree that every writer''s insert goes to the rightmost page of.';
