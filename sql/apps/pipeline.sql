-- Tandem reference schema: the pipeline app (modelled on Zoho Bigin).
--
-- Plain SQL only: loads with `psql -v ON_ERROR_STOP=1 -f pipeline.sql` and also when the whole
-- text is sent as one simple query (PQexec). No BEGIN/COMMIT here: the caller may wrap it.
-- Assumes a fresh database (creates schema `pipeline`). Load before crm.sql and sample.sql.
--
-- Every module table has `id bigserial` primary key, `created_time`, `modified_time` and a
-- BEFORE UPDATE trigger `set_modified_time` that stamps `modified_time := now()`.

CREATE SCHEMA pipeline;
COMMENT ON SCHEMA pipeline IS 'Reference tables of the pipeline app (modelled on Zoho Bigin): one table per module, snake_case field API names.';

CREATE FUNCTION pipeline.set_modified_time() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.modified_time := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION pipeline.set_modified_time() IS 'BEFORE UPDATE row trigger shared by every table of the pipeline app: stamps modified_time with the transaction time.';

-- ---------------------------------------------------------------------------------------------
-- Organisation, users, field settings
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pipeline.org (
    id        integer NOT NULL DEFAULT 1,
    org_name  text    NOT NULL,
    edition   text    NOT NULL,
    CONSTRAINT org_pk PRIMARY KEY (id),
    CONSTRAINT org_single_row_ck CHECK (id = 1),
    CONSTRAINT org_edition_ck CHECK (edition IN ('Free', 'Express', 'Premier', 'Bigin 360'))
);
COMMENT ON TABLE pipeline.org IS 'The pipeline app''s organisation (exactly one row, id = 1). The integration is offered only on editions Express, Premier and Bigin 360 (R6).';
COMMENT ON COLUMN pipeline.org.edition IS 'Bigin edition: Free, Express, Premier or Bigin 360.';

CREATE TABLE pipeline.users (
    id             bigserial   NOT NULL,
    email          text        NOT NULL,
    full_name      text        NOT NULL,
    profile        text        NOT NULL,
    role           text        NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pk PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);
COMMENT ON TABLE pipeline.users IS 'Users of the pipeline app. Owners are matched to the other app''s users by email, case-insensitively (R13); setting up the integration needs profile Administrator and role CEO (R5).';
COMMENT ON COLUMN pipeline.users.profile IS 'Permission profile, e.g. Administrator or Standard.';
COMMENT ON COLUMN pipeline.users.role IS 'Position in the role hierarchy, e.g. CEO, Manager, Sales Rep.';
COMMENT ON COLUMN pipeline.users.active IS 'false for a deactivated user; a deactivated user may still own records.';
CREATE INDEX users_email_lower_idx ON pipeline.users (lower(email));
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.users
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.field_settings (
    table_name   text    NOT NULL,
    column_name  text    NOT NULL,
    mandatory    boolean NOT NULL DEFAULT false,
    custom       boolean NOT NULL DEFAULT false,
    CONSTRAINT field_settings_pk PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE pipeline.field_settings IS 'Field declarations the catalog cannot express: fields declared mandatory in the app''s layout, and custom fields. A required custom field is a row with custom and mandatory both true (R8). Columns not listed are standard and optional unless NOT NULL without a default.';
COMMENT ON COLUMN pipeline.field_settings.table_name IS 'Table name inside schema pipeline, e.g. contacts.';
COMMENT ON COLUMN pipeline.field_settings.column_name IS 'Column of that table.';

-- ---------------------------------------------------------------------------------------------
-- Contacts & Companies
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pipeline.companies (
    id               bigserial   NOT NULL,
    company_name     text        NOT NULL,
    phone            text,
    website          text,
    description      text,
    billing_street   text,
    billing_city     text,
    billing_state    text,
    billing_code     text,
    billing_country  text,
    owner_id         bigint      NOT NULL,
    created_time     timestamptz NOT NULL DEFAULT now(),
    modified_time    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT companies_pk PRIMARY KEY (id),
    CONSTRAINT companies_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id)
);
COMMENT ON TABLE pipeline.companies IS 'Companies module (synced with CRM accounts). Names are not unique; first-sync matching is by name, ignoring case and surrounding/repeated spaces (B3).';
COMMENT ON COLUMN pipeline.companies.billing_code IS 'Billing postal code.';
CREATE INDEX companies_name_lower_idx ON pipeline.companies (lower(company_name));
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.companies
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.contacts (
    id                  bigserial   NOT NULL,
    first_name          text,
    last_name           text        NOT NULL,
    email               text,
    phone               text,
    mobile              text,
    title               text,
    company_id          bigint,
    description         text,
    mailing_street      text,
    mailing_city        text,
    mailing_state       text,
    mailing_zip         text,
    mailing_country     text,
    preferred_language  text,
    owner_id            bigint      NOT NULL,
    created_time        timestamptz NOT NULL DEFAULT now(),
    modified_time       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_pk PRIMARY KEY (id),
    CONSTRAINT contacts_company_fk FOREIGN KEY (company_id) REFERENCES pipeline.companies (id) ON DELETE SET NULL,
    CONSTRAINT contacts_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id)
);
COMMENT ON TABLE pipeline.contacts IS 'Contacts module (synced with CRM contacts). Emails are not enforced unique; first-sync matching is by lower(btrim(email)) (B3).';
COMMENT ON COLUMN pipeline.contacts.company_id IS 'The contact''s company (Bigin "Company Name" lookup); NULL for a contact without a company.';
COMMENT ON COLUMN pipeline.contacts.preferred_language IS 'Custom field (declared in field_settings, optional).';
CREATE INDEX contacts_company_idx ON pipeline.contacts (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX contacts_email_lower_idx ON pipeline.contacts (lower(email)) WHERE email IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.contacts
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Pipelines & Products
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pipeline.pipelines (
    id             bigserial   NOT NULL,
    team_pipeline  text        NOT NULL,
    sub_pipeline   text        NOT NULL,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_pk PRIMARY KEY (id),
    CONSTRAINT pipelines_name_key UNIQUE (team_pipeline, sub_pipeline),
    CONSTRAINT pipelines_id_name_key UNIQUE (id, team_pipeline, sub_pipeline)
);
COMMENT ON TABLE pipeline.pipelines IS 'Team pipelines and their sub-pipelines (e.g. Sales Pipeline / Standard, Sales Pipeline / Renewals).';
COMMENT ON COLUMN pipeline.pipelines.team_pipeline IS 'Team pipeline name, e.g. Sales Pipeline.';
COMMENT ON COLUMN pipeline.pipelines.sub_pipeline IS 'Sub-pipeline name inside the team pipeline, e.g. Standard or Renewals.';
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.pipelines
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.stages (
    id             bigserial   NOT NULL,
    pipeline_id    bigint      NOT NULL,
    team_pipeline  text        NOT NULL,
    sub_pipeline   text        NOT NULL,
    stage          text        NOT NULL,
    sequence       integer     NOT NULL,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stages_pk PRIMARY KEY (id),
    CONSTRAINT stages_pipeline_stage_key UNIQUE (pipeline_id, stage),
    CONSTRAINT stages_name_key UNIQUE (team_pipeline, sub_pipeline, stage),
    CONSTRAINT stages_pipeline_fk FOREIGN KEY (pipeline_id, team_pipeline, sub_pipeline)
        REFERENCES pipeline.pipelines (id, team_pipeline, sub_pipeline) ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE pipeline.stages IS 'Stages of each sub-pipeline, in display order. team_pipeline/sub_pipeline repeat the pipeline''s names (kept consistent by the composite foreign key) so that pipeline_records can reference a stage by name.';
COMMENT ON COLUMN pipeline.stages.sequence IS 'Display order of the stage within its sub-pipeline (1 = first).';
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.stages
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.pipeline_records (
    id             bigserial     NOT NULL,
    record_name    text          NOT NULL,
    team_pipeline  text          NOT NULL DEFAULT 'Sales Pipeline',
    sub_pipeline   text          NOT NULL,
    stage          text          NOT NULL,
    amount         numeric(16,2),
    closing_date   date,
    company_id     bigint,
    contact_id     bigint,
    description    text,
    owner_id       bigint        NOT NULL,
    created_time   timestamptz   NOT NULL DEFAULT now(),
    modified_time  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_records_pk PRIMARY KEY (id),
    CONSTRAINT pipeline_records_stage_fk FOREIGN KEY (team_pipeline, sub_pipeline, stage)
        REFERENCES pipeline.stages (team_pipeline, sub_pipeline, stage) ON UPDATE CASCADE,
    CONSTRAINT pipeline_records_company_fk FOREIGN KEY (company_id) REFERENCES pipeline.companies (id) ON DELETE SET NULL,
    CONSTRAINT pipeline_records_contact_fk FOREIGN KEY (contact_id) REFERENCES pipeline.contacts (id) ON DELETE SET NULL,
    CONSTRAINT pipeline_records_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id)
);
COMMENT ON TABLE pipeline.pipeline_records IS 'Pipeline records (Bigin "deals"; synced with CRM deals). (team_pipeline, sub_pipeline, stage) must name a row of pipeline.stages.';
COMMENT ON COLUMN pipeline.pipeline_records.record_name IS 'The record''s name (Bigin "Deal Name").';
COMMENT ON COLUMN pipeline.pipeline_records.team_pipeline IS 'Team pipeline; defaults to Sales Pipeline (the CRM has no counterpart, so a record created from a deal needs no mapping for it).';
COMMENT ON COLUMN pipeline.pipeline_records.sub_pipeline IS 'Sub-pipeline within the team pipeline (CRM counterpart: deals.pipeline).';
COMMENT ON COLUMN pipeline.pipeline_records.closing_date IS 'Expected or actual closing date.';
CREATE INDEX pipeline_records_company_idx ON pipeline.pipeline_records (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX pipeline_records_contact_idx ON pipeline.pipeline_records (contact_id) WHERE contact_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.pipeline_records
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.products (
    id             bigserial     NOT NULL,
    product_name   text          NOT NULL,
    product_code   text,
    unit_price     numeric(16,2),
    description    text,
    active         boolean       NOT NULL DEFAULT true,
    owner_id       bigint        NOT NULL,
    created_time   timestamptz   NOT NULL DEFAULT now(),
    modified_time  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT products_pk PRIMARY KEY (id),
    CONSTRAINT products_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id)
);
COMMENT ON TABLE pipeline.products IS 'Products module (synced with CRM products). First-sync matching is by product_code (B3).';
COMMENT ON COLUMN pipeline.products.active IS 'Whether the product can still be attached to pipeline records (CRM: product_active).';
CREATE INDEX products_code_idx ON pipeline.products (product_code) WHERE product_code IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.products
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.pipeline_record_products (
    id                  bigserial     NOT NULL,
    pipeline_record_id  bigint        NOT NULL,
    product_id          bigint        NOT NULL,
    quantity            numeric(12,2) NOT NULL DEFAULT 1,
    list_price          numeric(16,2),
    created_time        timestamptz   NOT NULL DEFAULT now(),
    modified_time       timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_record_products_pk PRIMARY KEY (id),
    CONSTRAINT pipeline_record_products_pair_key UNIQUE (pipeline_record_id, product_id),
    CONSTRAINT pipeline_record_products_record_fk FOREIGN KEY (pipeline_record_id)
        REFERENCES pipeline.pipeline_records (id) ON DELETE CASCADE,
    CONSTRAINT pipeline_record_products_product_fk FOREIGN KEY (product_id) REFERENCES pipeline.products (id) ON DELETE CASCADE,
    CONSTRAINT pipeline_record_products_quantity_ck CHECK (quantity > 0)
);
COMMENT ON TABLE pipeline.pipeline_record_products IS 'Products attached to pipeline records (the related list "Products" of a pipeline record; synced with CRM deal_products).';
COMMENT ON COLUMN pipeline.pipeline_record_products.list_price IS 'Price per unit on this record (defaults in the UI to the product''s unit_price).';
CREATE INDEX pipeline_record_products_product_idx ON pipeline.pipeline_record_products (product_id);
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.pipeline_record_products
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Activities: tasks, events, calls (related to a contact and/or a pipeline record)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pipeline.tasks (
    id                  bigserial   NOT NULL,
    subject             text        NOT NULL,
    due_date            date,
    status              text,
    priority            text,
    description         text,
    contact_id          bigint,
    pipeline_record_id  bigint,
    owner_id            bigint      NOT NULL,
    reminder_at         timestamptz,
    recurrence          text,
    created_time        timestamptz NOT NULL DEFAULT now(),
    modified_time       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_pk PRIMARY KEY (id),
    CONSTRAINT tasks_contact_fk FOREIGN KEY (contact_id) REFERENCES pipeline.contacts (id) ON DELETE SET NULL,
    CONSTRAINT tasks_pipeline_record_fk FOREIGN KEY (pipeline_record_id) REFERENCES pipeline.pipeline_records (id) ON DELETE SET NULL,
    CONSTRAINT tasks_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id),
    CONSTRAINT tasks_status_ck CHECK (status IN ('Not Started', 'Deferred', 'In Progress', 'Completed', 'Waiting for input')),
    CONSTRAINT tasks_priority_ck CHECK (priority IN ('Highest', 'High', 'Normal', 'Low', 'Lowest'))
);
COMMENT ON TABLE pipeline.tasks IS 'Tasks (activities), related to a contact and/or a pipeline record. reminder_at and recurrence belong to this app only and are never synced (R12).';
COMMENT ON COLUMN pipeline.tasks.reminder_at IS 'When to remind the owner; app-local, never synced (R12).';
COMMENT ON COLUMN pipeline.tasks.recurrence IS 'iCalendar RRULE text (e.g. FREQ=WEEKLY;INTERVAL=1); app-local, never synced (R12).';
CREATE INDEX tasks_contact_idx ON pipeline.tasks (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX tasks_pipeline_record_idx ON pipeline.tasks (pipeline_record_id) WHERE pipeline_record_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.tasks
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.events (
    id                  bigserial   NOT NULL,
    title               text        NOT NULL,
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    venue               text,
    description         text,
    contact_id          bigint,
    pipeline_record_id  bigint,
    owner_id            bigint      NOT NULL,
    reminder_minutes    integer,
    recurrence          text,
    created_time        timestamptz NOT NULL DEFAULT now(),
    modified_time       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pk PRIMARY KEY (id),
    CONSTRAINT events_contact_fk FOREIGN KEY (contact_id) REFERENCES pipeline.contacts (id) ON DELETE SET NULL,
    CONSTRAINT events_pipeline_record_fk FOREIGN KEY (pipeline_record_id) REFERENCES pipeline.pipeline_records (id) ON DELETE SET NULL,
    CONSTRAINT events_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id),
    CONSTRAINT events_time_ck CHECK (end_time >= start_time),
    CONSTRAINT events_reminder_ck CHECK (reminder_minutes >= 0)
);
COMMENT ON TABLE pipeline.events IS 'Events (meetings; activities), related to a contact and/or a pipeline record. reminder_minutes and recurrence are app-local and never synced (R12).';
COMMENT ON COLUMN pipeline.events.reminder_minutes IS 'Remind this many minutes before start_time; app-local, never synced (R12).';
COMMENT ON COLUMN pipeline.events.recurrence IS 'iCalendar RRULE text; app-local, never synced (R12).';
CREATE INDEX events_contact_idx ON pipeline.events (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX events_pipeline_record_idx ON pipeline.events (pipeline_record_id) WHERE pipeline_record_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.events
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

CREATE TABLE pipeline.calls (
    id                     bigserial   NOT NULL,
    subject                text        NOT NULL,
    call_type              text        NOT NULL,
    call_start_time        timestamptz NOT NULL,
    call_duration_seconds  integer,
    description            text,
    contact_id             bigint,
    pipeline_record_id     bigint,
    owner_id               bigint      NOT NULL,
    reminder_at            timestamptz,
    created_time           timestamptz NOT NULL DEFAULT now(),
    modified_time          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calls_pk PRIMARY KEY (id),
    CONSTRAINT calls_contact_fk FOREIGN KEY (contact_id) REFERENCES pipeline.contacts (id) ON DELETE SET NULL,
    CONSTRAINT calls_pipeline_record_fk FOREIGN KEY (pipeline_record_id) REFERENCES pipeline.pipeline_records (id) ON DELETE SET NULL,
    CONSTRAINT calls_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id),
    CONSTRAINT calls_type_ck CHECK (call_type IN ('Outbound', 'Inbound', 'Missed')),
    CONSTRAINT calls_duration_ck CHECK (call_duration_seconds >= 0)
);
COMMENT ON TABLE pipeline.calls IS 'Calls (logged or scheduled; activities), related to a contact and/or a pipeline record. reminder_at is app-local and never synced (R12).';
COMMENT ON COLUMN pipeline.calls.reminder_at IS 'Reminder for a scheduled call; app-local, never synced (R12).';
CREATE INDEX calls_contact_idx ON pipeline.calls (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX calls_pipeline_record_idx ON pipeline.calls (pipeline_record_id) WHERE pipeline_record_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.calls
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Notes (parent: a contact, a company or a pipeline record)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE pipeline.notes (
    id                  bigserial   NOT NULL,
    note_title          text,
    note_content        text        NOT NULL,
    parent_module       text        NOT NULL,
    contact_id          bigint,
    company_id          bigint,
    pipeline_record_id  bigint,
    owner_id            bigint      NOT NULL,
    created_time        timestamptz NOT NULL DEFAULT now(),
    modified_time       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_pk PRIMARY KEY (id),
    CONSTRAINT notes_contact_fk FOREIGN KEY (contact_id) REFERENCES pipeline.contacts (id) ON DELETE CASCADE,
    CONSTRAINT notes_company_fk FOREIGN KEY (company_id) REFERENCES pipeline.companies (id) ON DELETE CASCADE,
    CONSTRAINT notes_pipeline_record_fk FOREIGN KEY (pipeline_record_id) REFERENCES pipeline.pipeline_records (id) ON DELETE CASCADE,
    CONSTRAINT notes_owner_fk FOREIGN KEY (owner_id) REFERENCES pipeline.users (id),
    CONSTRAINT notes_parent_module_ck CHECK (parent_module IN ('contacts', 'companies', 'pipeline_records')),
    CONSTRAINT notes_parent_ck CHECK (
        CASE parent_module
            WHEN 'contacts'         THEN contact_id IS NOT NULL AND company_id IS NULL AND pipeline_record_id IS NULL
            WHEN 'companies'        THEN company_id IS NOT NULL AND contact_id IS NULL AND pipeline_record_id IS NULL
            WHEN 'pipeline_records' THEN pipeline_record_id IS NOT NULL AND contact_id IS NULL AND company_id IS NULL
        END)
);
COMMENT ON TABLE pipeline.notes IS 'Notes. parent_module names the parent''s table; exactly the matching one of contact_id / company_id / pipeline_record_id is set (CHECK notes_parent_ck).';
COMMENT ON COLUMN pipeline.notes.parent_module IS 'contacts, companies or pipeline_records: which of the three parent columns is set.';
CREATE INDEX notes_contact_idx ON pipeline.notes (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX notes_company_idx ON pipeline.notes (company_id) WHERE company_id IS NOT NULL;
CREATE INDEX notes_pipeline_record_idx ON pipeline.notes (pipeline_record_id) WHERE pipeline_record_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON pipeline.notes
    FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Reference data (configuration, not sample records)
-- ---------------------------------------------------------------------------------------------

INSERT INTO pipeline.pipelines (team_pipeline, sub_pipeline) VALUES
    ('Sales Pipeline', 'Standard'),
    ('Sales Pipeline', 'Renewals');

INSERT INTO pipeline.stages (pipeline_id, team_pipeline, sub_pipeline, stage, sequence)
SELECT p.id, p.team_pipeline, p.sub_pipeline, s.stage, s.sequence
FROM pipeline.pipelines AS p
CROSS JOIN (VALUES
    ('Qualification',        1),
    ('Needs Identified',     2),
    ('Proposal/Price Quote', 3),
    ('Negotiation/Review',   4),
    ('Closed Won',           5),
    ('Closed Lost',          6)
) AS s (stage, sequence)
ORDER BY p.id, s.sequence;

INSERT INTO pipeline.field_settings (table_name, column_name, mandatory, custom) VALUES
    ('companies',        'company_name',       true,  false),
    ('contacts',         'last_name',          true,  false),
    ('contacts',         'preferred_language', false, true),
    ('pipeline_records', 'record_name',        true,  false),
    ('pipeline_records', 'stage',              true,  false),
    ('products',         'product_name',       true,  false);
