-- 0001: the engine's state — integrations, tabs, module pairs, field mappings,
-- ID links, record mirrors, sync cursors, the change log, and the records of
-- what happened (runs, events, conflicts, record errors).
-- Applied once by the library's migrator, in a transaction, under an advisory lock.

CREATE TABLE tandem.integrations (
    integration_id  bigserial CONSTRAINT integrations_pk PRIMARY KEY,
    name            text NOT NULL CONSTRAINT integrations_name_key UNIQUE,
    config          jsonb NOT NULL,
    conflict_policy text NOT NULL DEFAULT 'latest'
        CONSTRAINT integrations_conflict_policy_check
        CHECK (conflict_policy IN ('latest', 'crm_wins', 'pipeline_wins', 'skip')),
    pipeline_setup_user_id text NOT NULL,
    crm_setup_user_id      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tandem.integrations IS 'One pair of apps kept in sync; config is the validated configuration as the host gave it.';
COMMENT ON COLUMN tandem.integrations.conflict_policy IS 'Decides fields changed on both sides: latest (most recent modified time), crm_wins, pipeline_wins, skip (neither side is written).';
COMMENT ON COLUMN tandem.integrations.pipeline_setup_user_id IS 'The acting user in the pipeline app (Administrator + CEO, R5): owner of records whose owner has no user there (R13).';
COMMENT ON COLUMN tandem.integrations.crm_setup_user_id IS 'The acting user in the CRM app (Administrator + CEO, R5): owner of records whose owner has no user there (R13).';

CREATE TABLE tandem.tabs (
    integration_id  bigint NOT NULL CONSTRAINT tabs_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    tab             text NOT NULL
        CONSTRAINT tabs_tab_check
        CHECK (tab IN ('contacts_companies', 'pipelines_products', 'activities', 'notes')),
    state           text NOT NULL DEFAULT 'configured'
        CONSTRAINT tabs_state_check
        CHECK (state IN ('configured', 'initial_sync', 'active', 'inactive')),
    activated_at               timestamptz,
    initial_sync_completed_at  timestamptz,
    initial_sync_progress      jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT tabs_pk PRIMARY KEY (integration_id, tab)
);
COMMENT ON TABLE tandem.tabs IS 'The four tab pairs of an integration (R1) and where each stands: configured, initial_sync (R10), active, inactive.';
COMMENT ON COLUMN tandem.tabs.initial_sync_progress IS 'Per module and side: the last key handled by the chunked initial sync and the counts so far.';

CREATE TABLE tandem.module_pairs (
    integration_id  bigint NOT NULL CONSTRAINT module_pairs_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    tab             text NOT NULL,
    position        int NOT NULL,
    pipeline_table  regclass NOT NULL,
    pipeline_key    text NOT NULL,
    crm_table       regclass NOT NULL,
    crm_key         text NOT NULL,
    crm_view        regclass,
    CONSTRAINT module_pairs_pk PRIMARY KEY (integration_id, module),
    CONSTRAINT module_pairs_tab_fk FOREIGN KEY (integration_id, tab) REFERENCES tandem.tabs ON DELETE CASCADE
);
COMMENT ON TABLE tandem.module_pairs IS 'Which table of each app holds a module (companies <-> accounts, ...), in parent-first order (position).';
COMMENT ON COLUMN tandem.module_pairs.crm_view IS 'The one CRM view selected for the module (R7): only CRM records in it are brought to the pipeline app.';

CREATE TABLE tandem.field_mappings (
    integration_id  bigint NOT NULL,
    module          text NOT NULL,
    field           text NOT NULL,
    pipeline_column text NOT NULL,
    crm_column      text NOT NULL,
    kind            text NOT NULL CONSTRAINT field_mappings_kind_check CHECK (kind IN ('value', 'lookup', 'owner', 'value_map', 'parent')),
    lookup_module   text,
    CONSTRAINT field_mappings_pk PRIMARY KEY (integration_id, module, field),
    CONSTRAINT field_mappings_module_fk FOREIGN KEY (integration_id, module) REFERENCES tandem.module_pairs ON DELETE CASCADE
);
COMMENT ON TABLE tandem.field_mappings IS 'Mapped fields of a module pair (R8): a plain value, a lookup translated through the links, an owner matched by email (R13), a value map (stages), or a parent that may be one of several modules (R11).';

CREATE TABLE tandem.links (
    link_id         bigserial CONSTRAINT links_pk PRIMARY KEY,
    integration_id  bigint NOT NULL CONSTRAINT links_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    pipeline_id     text NOT NULL,
    crm_id          text NOT NULL,
    origin          text NOT NULL CONSTRAINT links_origin_check CHECK (origin IN ('matched', 'pipeline', 'crm')),
    linked_at       timestamptz NOT NULL DEFAULT now(),
    pipeline_deleted_at timestamptz,
    crm_deleted_at      timestamptz,
    CONSTRAINT links_pipeline_key UNIQUE (integration_id, module, pipeline_id),
    CONSTRAINT links_crm_key UNIQUE (integration_id, module, crm_id)
);
COMMENT ON TABLE tandem.links IS 'ID links: this pipeline-app record is that CRM record. Never removed when a record is deleted (R4).';
COMMENT ON COLUMN tandem.links.origin IS 'matched: existed on both sides and was paired (B3); pipeline/crm: created from that side.';
COMMENT ON COLUMN tandem.links.pipeline_deleted_at IS 'When the pipeline-app record was seen deleted; the deletion was not propagated (R4).';

CREATE TABLE tandem.mirrors (
    link_id         bigint CONSTRAINT mirrors_pk PRIMARY KEY CONSTRAINT mirrors_link_fk REFERENCES tandem.links ON DELETE CASCADE,
    pipeline_state  jsonb NOT NULL,
    crm_state       jsonb NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
COMMENT ON TABLE tandem.mirrors IS 'Record mirrors: every mapped field of both sides as last synced, in canonical form (lookups as link ids, owners as emails). The base of the field-level three-way merge (B2).';

CREATE TABLE tandem.sync_cursors (
    integration_id  bigint CONSTRAINT sync_cursors_pk PRIMARY KEY CONSTRAINT sync_cursors_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    snapshot        pg_snapshot NOT NULL,
    position        xid8 GENERATED ALWAYS AS (pg_snapshot_xmin(snapshot)) STORED,
    moved_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tandem.sync_cursors IS 'Where each integration has read the change log up to: the snapshot of its last pass that read changes. The next pass reads exactly the changes visible to it and not to that snapshot, so a transaction still running then is read once it commits, and a long transaction elsewhere delays nothing (B1).';
COMMENT ON COLUMN tandem.sync_cursors.position IS 'Every change logged by a transaction older than this has been read; the change log below the smallest position is pruned.';

CREATE TABLE tandem.change_log (
    xid             xid8 NOT NULL DEFAULT pg_current_xact_id(),
    table_oid       oid NOT NULL,
    record_id       text NOT NULL,
    operation       "char" NOT NULL CONSTRAINT change_log_operation_check CHECK (operation IN ('I', 'U', 'D')),
    logged_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_xid_idx ON tandem.change_log (xid);
COMMENT ON TABLE tandem.change_log IS 'Keys of changed rows, written by the statement-level capture triggers. Rows below every cursor are pruned.';

CREATE TABLE tandem.watched_tables (
    table_oid       oid CONSTRAINT watched_tables_pk PRIMARY KEY,
    table_name      regclass NOT NULL,
    key_column      text NOT NULL,
    installed_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tandem.watched_tables IS 'App tables that carry Tandem''s capture triggers.';

CREATE TABLE tandem.waiting_records (
    integration_id  bigint NOT NULL CONSTRAINT waiting_records_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    side            text NOT NULL CONSTRAINT waiting_records_side_check CHECK (side IN ('pipeline', 'crm')),
    record_id       text NOT NULL,
    parent_module   text NOT NULL,
    parent_id       text NOT NULL,
    since           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT waiting_records_pk PRIMARY KEY (integration_id, module, side, record_id, parent_module, parent_id)
);
CREATE INDEX waiting_records_parent_idx ON tandem.waiting_records (integration_id, parent_module, side, parent_id);
COMMENT ON TABLE tandem.waiting_records IS 'Records that refer to a parent (company, contact, deal, ...) not linked yet, one row per missing parent (its id on the same side). They are neither errors nor lost: the pass that links the parent syncs them (R11).';

CREATE TABLE tandem.runs (
    run_id          bigserial CONSTRAINT runs_pk PRIMARY KEY,
    integration_id  bigint NOT NULL CONSTRAINT runs_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    kind            text NOT NULL CONSTRAINT runs_kind_check CHECK (kind IN ('initial_sync', 'incremental')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    changes_read    bigint NOT NULL DEFAULT 0,
    matched         bigint NOT NULL DEFAULT 0,
    created_in_pipeline bigint NOT NULL DEFAULT 0,
    created_in_crm  bigint NOT NULL DEFAULT 0,
    updated_in_pipeline bigint NOT NULL DEFAULT 0,
    updated_in_crm  bigint NOT NULL DEFAULT 0,
    conflicts       bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    waiting         bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE tandem.runs IS 'One row per sync pass that did something (a quiet pass writes nothing, B4).';

CREATE TABLE tandem.events (
    event_id        bigserial CONSTRAINT events_pk PRIMARY KEY,
    integration_id  bigint NOT NULL CONSTRAINT events_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    type            text NOT NULL,
    tab             text,
    payload         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE tandem.events IS 'Notifications for people and hosts, such as initial_sync_complete (R10).';

CREATE TABLE tandem.conflict_decisions (
    conflict_id     bigserial CONSTRAINT conflict_decisions_pk PRIMARY KEY,
    integration_id  bigint NOT NULL CONSTRAINT conflict_decisions_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    link_id         bigint NOT NULL CONSTRAINT conflict_decisions_link_fk REFERENCES tandem.links ON DELETE CASCADE,
    module          text NOT NULL,
    field           text NOT NULL,
    pipeline_value  jsonb,
    crm_value       jsonb,
    winner          text NOT NULL CONSTRAINT conflict_decisions_winner_check CHECK (winner IN ('pipeline', 'crm', 'none')),
    policy          text NOT NULL CONSTRAINT conflict_decisions_policy_check CHECK (policy IN ('latest', 'crm_wins', 'pipeline_wins', 'skip')),
    reason          text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conflict_decisions_integration_idx ON tandem.conflict_decisions (integration_id, decided_at);
COMMENT ON TABLE tandem.conflict_decisions IS 'Every field changed differently on both sides, both values, the winner and why (B2).';

CREATE TABLE tandem.record_failures (
    integration_id  bigint NOT NULL CONSTRAINT record_failures_integration_fk REFERENCES tandem.integrations ON DELETE CASCADE,
    module          text NOT NULL,
    side            text NOT NULL CONSTRAINT record_failures_side_check CHECK (side IN ('pipeline', 'crm')),
    record_id       text NOT NULL,
    operation       text NOT NULL,
    sqlstate        text,
    message         text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    attempts        int NOT NULL DEFAULT 1,
    retry_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    CONSTRAINT record_failures_pk PRIMARY KEY (integration_id, module, side, record_id)
);
CREATE INDEX record_failures_retry_idx ON tandem.record_failures (integration_id, retry_at) WHERE resolved_at IS NULL;
COMMENT ON TABLE tandem.record_failures IS 'Records that could not be written to the other app (B6). side is where the record comes from. Retried when the record changes, and on a growing back-off (retry_at) in case the other side was fixed.';
