-- Tandem reference schema: the CRM app (modelled on Zoho CRM).
--
-- Plain SQL only: loads with `psql -v ON_ERROR_STOP=1 -f crm.sql` and also when the whole text
-- is sent as one simple query (PQexec). No BEGIN/COMMIT here: the caller may wrap it.
-- Assumes a fresh database (creates schema `crm`). Load after pipeline.sql, before sample.sql.
--
-- Every module table has `id bigserial` primary key, `created_time`, `modified_time` and a
-- BEFORE UPDATE trigger `set_modified_time` that stamps `modified_time := now()`.
-- Views (crm.all_accounts, crm.open_deals, ...) are the CRM's named list filters (R7).

CREATE SCHEMA crm;
COMMENT ON SCHEMA crm IS 'Reference tables of the CRM app (modelled on Zoho CRM): one table per module, snake_case field API names; views are the named list filters.';

CREATE FUNCTION crm.set_modified_time() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.modified_time := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION crm.set_modified_time() IS 'BEFORE UPDATE row trigger shared by every table of the CRM app: stamps modified_time with the transaction time.';

-- ---------------------------------------------------------------------------------------------
-- Organisation, users, field settings
-- ---------------------------------------------------------------------------------------------

CREATE TABLE crm.org (
    id        integer NOT NULL DEFAULT 1,
    org_name  text    NOT NULL,
    edition   text    NOT NULL,
    CONSTRAINT org_pk PRIMARY KEY (id),
    CONSTRAINT org_single_row_ck CHECK (id = 1)
);
COMMENT ON TABLE crm.org IS 'The CRM app''s organisation (exactly one row, id = 1).';
COMMENT ON COLUMN crm.org.edition IS 'Zoho CRM edition, e.g. Standard, Professional, Enterprise, Ultimate.';

CREATE TABLE crm.users (
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
COMMENT ON TABLE crm.users IS 'Users of the CRM app. Owners are matched to the other app''s users by email, case-insensitively (R13); setting up the integration needs profile Administrator and role CEO (R5).';
COMMENT ON COLUMN crm.users.profile IS 'Permission profile, e.g. Administrator or Standard.';
COMMENT ON COLUMN crm.users.role IS 'Position in the role hierarchy, e.g. CEO, Manager, Sales Rep.';
COMMENT ON COLUMN crm.users.active IS 'false for a deactivated user; a deactivated user may still own records.';
CREATE INDEX users_email_lower_idx ON crm.users (lower(email));
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.users
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.field_settings (
    table_name   text    NOT NULL,
    column_name  text    NOT NULL,
    mandatory    boolean NOT NULL DEFAULT false,
    custom       boolean NOT NULL DEFAULT false,
    CONSTRAINT field_settings_pk PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE crm.field_settings IS 'Field declarations the catalog cannot express: fields declared mandatory in the app''s layout, and custom fields. A required custom field is a row with custom and mandatory both true (R8). Columns not listed are standard and optional unless NOT NULL without a default.';
COMMENT ON COLUMN crm.field_settings.table_name IS 'Table name inside schema crm, e.g. contacts.';
COMMENT ON COLUMN crm.field_settings.column_name IS 'Column of that table.';

-- ---------------------------------------------------------------------------------------------
-- Accounts & Contacts
-- ---------------------------------------------------------------------------------------------

CREATE TABLE crm.accounts (
    id               bigserial     NOT NULL,
    account_name     text          NOT NULL,
    phone            text,
    website          text,
    description      text,
    billing_street   text,
    billing_city     text,
    billing_state    text,
    billing_code     text,
    billing_country  text,
    industry         text,
    annual_revenue   numeric(16,2),
    owner_id         bigint        NOT NULL,
    created_time     timestamptz   NOT NULL DEFAULT now(),
    modified_time    timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT accounts_pk PRIMARY KEY (id),
    CONSTRAINT accounts_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id)
);
COMMENT ON TABLE crm.accounts IS 'Accounts module (synced with pipeline companies). Names are not unique; first-sync matching is by name, ignoring case and surrounding/repeated spaces (B3).';
COMMENT ON COLUMN crm.accounts.billing_code IS 'Billing postal code.';
COMMENT ON COLUMN crm.accounts.annual_revenue IS 'Yearly revenue in the org currency; view key_accounts selects >= 1,000,000.';
CREATE INDEX accounts_name_lower_idx ON crm.accounts (lower(account_name));
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.accounts
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.contacts (
    id               bigserial   NOT NULL,
    first_name       text,
    last_name        text        NOT NULL,
    email            text,
    phone            text,
    mobile           text,
    title            text,
    account_id       bigint,
    description      text,
    mailing_street   text,
    mailing_city     text,
    mailing_state    text,
    mailing_zip      text,
    mailing_country  text,
    lead_source      text,
    customer_tier    text,
    owner_id         bigint      NOT NULL,
    created_time     timestamptz NOT NULL DEFAULT now(),
    modified_time    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_pk PRIMARY KEY (id),
    CONSTRAINT contacts_account_fk FOREIGN KEY (account_id) REFERENCES crm.accounts (id) ON DELETE SET NULL,
    CONSTRAINT contacts_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id)
);
COMMENT ON TABLE crm.contacts IS 'Contacts module (synced with pipeline contacts). Emails are not enforced unique; first-sync matching is by lower(btrim(email)) (B3).';
COMMENT ON COLUMN crm.contacts.account_id IS 'The contact''s account ("Account Name" lookup); NULL for a contact without an account.';
COMMENT ON COLUMN crm.contacts.lead_source IS 'Standard picklist, e.g. Advertisement, Cold Call, Trade Show, Web Research.';
COMMENT ON COLUMN crm.contacts.customer_tier IS 'Custom field (declared in field_settings, optional): Gold, Silver, Bronze.';
CREATE INDEX contacts_account_idx ON crm.contacts (account_id) WHERE account_id IS NOT NULL;
CREATE INDEX contacts_email_lower_idx ON crm.contacts (lower(email)) WHERE email IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.contacts
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Deals & Products
-- ---------------------------------------------------------------------------------------------

CREATE TABLE crm.pipelines (
    id             bigserial   NOT NULL,
    pipeline       text        NOT NULL,
    is_default     boolean     NOT NULL DEFAULT false,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_pk PRIMARY KEY (id),
    CONSTRAINT pipelines_name_key UNIQUE (pipeline)
);
COMMENT ON TABLE crm.pipelines IS 'Deal pipelines (e.g. Standard, Renewals).';
COMMENT ON COLUMN crm.pipelines.is_default IS 'The pipeline a new deal gets when none is given.';
CREATE UNIQUE INDEX pipelines_one_default_idx ON crm.pipelines (is_default) WHERE is_default;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.pipelines
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.stages (
    id                 bigserial   NOT NULL,
    pipeline           text        NOT NULL,
    stage              text        NOT NULL,
    sequence           integer     NOT NULL,
    probability        integer     NOT NULL,
    forecast_category  text        NOT NULL,
    created_time       timestamptz NOT NULL DEFAULT now(),
    modified_time      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stages_pk PRIMARY KEY (id),
    CONSTRAINT stages_name_key UNIQUE (pipeline, stage),
    CONSTRAINT stages_pipeline_fk FOREIGN KEY (pipeline) REFERENCES crm.pipelines (pipeline)
        ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT stages_probability_ck CHECK (probability BETWEEN 0 AND 100),
    CONSTRAINT stages_forecast_category_ck CHECK (forecast_category IN ('Pipeline', 'Closed', 'Omitted'))
);
COMMENT ON TABLE crm.stages IS 'Stages of each deal pipeline, in display order, with the default probability Zoho CRM gives a deal entering the stage.';
COMMENT ON COLUMN crm.stages.sequence IS 'Display order of the stage within its pipeline (1 = first).';
COMMENT ON COLUMN crm.stages.forecast_category IS 'Pipeline (open), Closed (won) or Omitted (lost).';
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.stages
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.deals (
    id             bigserial     NOT NULL,
    deal_name      text          NOT NULL,
    pipeline       text          NOT NULL,
    stage          text          NOT NULL,
    amount         numeric(16,2),
    closing_date   date,
    account_id     bigint,
    contact_id     bigint,
    probability    integer,
    description    text,
    owner_id       bigint        NOT NULL,
    created_time   timestamptz   NOT NULL DEFAULT now(),
    modified_time  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT deals_pk PRIMARY KEY (id),
    CONSTRAINT deals_stage_fk FOREIGN KEY (pipeline, stage) REFERENCES crm.stages (pipeline, stage) ON UPDATE CASCADE,
    CONSTRAINT deals_account_fk FOREIGN KEY (account_id) REFERENCES crm.accounts (id) ON DELETE SET NULL,
    CONSTRAINT deals_contact_fk FOREIGN KEY (contact_id) REFERENCES crm.contacts (id) ON DELETE SET NULL,
    CONSTRAINT deals_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id),
    CONSTRAINT deals_probability_ck CHECK (probability BETWEEN 0 AND 100)
);
COMMENT ON TABLE crm.deals IS 'Deals module (synced with pipeline records). (pipeline, stage) must name a row of crm.stages.';
COMMENT ON COLUMN crm.deals.contact_id IS 'The deal''s contact ("Contact Name" lookup).';
COMMENT ON COLUMN crm.deals.probability IS 'Win probability in percent; the UI defaults it from crm.stages.probability.';
CREATE INDEX deals_account_idx ON crm.deals (account_id) WHERE account_id IS NOT NULL;
CREATE INDEX deals_contact_idx ON crm.deals (contact_id) WHERE contact_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.deals
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.products (
    id              bigserial     NOT NULL,
    product_name    text          NOT NULL,
    product_code    text,
    unit_price      numeric(16,2),
    description     text,
    product_active  boolean       NOT NULL DEFAULT true,
    owner_id        bigint        NOT NULL,
    created_time    timestamptz   NOT NULL DEFAULT now(),
    modified_time   timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT products_pk PRIMARY KEY (id),
    CONSTRAINT products_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id)
);
COMMENT ON TABLE crm.products IS 'Products module (synced with pipeline products). First-sync matching is by product_code (B3).';
COMMENT ON COLUMN crm.products.product_active IS 'Whether the product can still be added to deals (pipeline app: active).';
CREATE INDEX products_code_idx ON crm.products (product_code) WHERE product_code IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.products
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.deal_products (
    id             bigserial     NOT NULL,
    deal_id        bigint        NOT NULL,
    product_id     bigint        NOT NULL,
    quantity       numeric(12,2) NOT NULL DEFAULT 1,
    list_price     numeric(16,2),
    created_time   timestamptz   NOT NULL DEFAULT now(),
    modified_time  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT deal_products_pk PRIMARY KEY (id),
    CONSTRAINT deal_products_pair_key UNIQUE (deal_id, product_id),
    CONSTRAINT deal_products_deal_fk FOREIGN KEY (deal_id) REFERENCES crm.deals (id) ON DELETE CASCADE,
    CONSTRAINT deal_products_product_fk FOREIGN KEY (product_id) REFERENCES crm.products (id) ON DELETE CASCADE,
    CONSTRAINT deal_products_quantity_ck CHECK (quantity > 0)
);
COMMENT ON TABLE crm.deal_products IS 'Products attached to deals (the deal''s related list "Products"; synced with pipeline_record_products).';
COMMENT ON COLUMN crm.deal_products.list_price IS 'Price per unit on this deal (defaults in the UI to the product''s unit_price).';
CREATE INDEX deal_products_product_idx ON crm.deal_products (product_id);
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.deal_products
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Activities: tasks, events, calls
--   who_id                 -> a contact (foreign key)
--   what_module + what_id  -> an account or a deal (polymorphic, as in Zoho: no foreign key)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE crm.tasks (
    id             bigserial   NOT NULL,
    subject        text        NOT NULL,
    due_date       date,
    status         text,
    priority       text,
    description    text,
    who_id         bigint,
    what_module    text,
    what_id        bigint,
    owner_id       bigint      NOT NULL,
    reminder_at    timestamptz,
    recurrence     text,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_pk PRIMARY KEY (id),
    CONSTRAINT tasks_who_fk FOREIGN KEY (who_id) REFERENCES crm.contacts (id) ON DELETE SET NULL,
    CONSTRAINT tasks_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id),
    CONSTRAINT tasks_what_module_ck CHECK (what_module IN ('accounts', 'deals')),
    CONSTRAINT tasks_what_ck CHECK ((what_module IS NULL) = (what_id IS NULL)),
    CONSTRAINT tasks_status_ck CHECK (status IN ('Not Started', 'Deferred', 'In Progress', 'Completed', 'Waiting for input')),
    CONSTRAINT tasks_priority_ck CHECK (priority IN ('Highest', 'High', 'Normal', 'Low', 'Lowest'))
);
COMMENT ON TABLE crm.tasks IS 'Tasks (activities). who_id is the contact; what_module/what_id the related account or deal. reminder_at and recurrence belong to this app only and are never synced (R12).';
COMMENT ON COLUMN crm.tasks.who_id IS 'Related contact ("Contact Name").';
COMMENT ON COLUMN crm.tasks.what_module IS 'accounts or deals: the table what_id points into; NULL when what_id is NULL.';
COMMENT ON COLUMN crm.tasks.what_id IS 'id of the related account or deal ("Related To"); polymorphic, so not a foreign key.';
COMMENT ON COLUMN crm.tasks.reminder_at IS 'When to remind the owner; app-local, never synced (R12).';
COMMENT ON COLUMN crm.tasks.recurrence IS 'iCalendar RRULE text (e.g. FREQ=WEEKLY;INTERVAL=1); app-local, never synced (R12).';
CREATE INDEX tasks_who_idx ON crm.tasks (who_id) WHERE who_id IS NOT NULL;
CREATE INDEX tasks_what_idx ON crm.tasks (what_module, what_id) WHERE what_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.tasks
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.events (
    id                bigserial   NOT NULL,
    title             text        NOT NULL,
    start_time        timestamptz NOT NULL,
    end_time          timestamptz NOT NULL,
    venue             text,
    description       text,
    who_id            bigint,
    what_module       text,
    what_id           bigint,
    owner_id          bigint      NOT NULL,
    reminder_minutes  integer,
    recurrence        text,
    created_time      timestamptz NOT NULL DEFAULT now(),
    modified_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pk PRIMARY KEY (id),
    CONSTRAINT events_who_fk FOREIGN KEY (who_id) REFERENCES crm.contacts (id) ON DELETE SET NULL,
    CONSTRAINT events_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id),
    CONSTRAINT events_what_module_ck CHECK (what_module IN ('accounts', 'deals')),
    CONSTRAINT events_what_ck CHECK ((what_module IS NULL) = (what_id IS NULL)),
    CONSTRAINT events_time_ck CHECK (end_time >= start_time),
    CONSTRAINT events_reminder_ck CHECK (reminder_minutes >= 0)
);
COMMENT ON TABLE crm.events IS 'Events (meetings; activities). who_id is the contact; what_module/what_id the related account or deal. reminder_minutes and recurrence are app-local and never synced (R12).';
COMMENT ON COLUMN crm.events.who_id IS 'Related contact ("Contact Name").';
COMMENT ON COLUMN crm.events.what_module IS 'accounts or deals: the table what_id points into; NULL when what_id is NULL.';
COMMENT ON COLUMN crm.events.what_id IS 'id of the related account or deal ("Related To"); polymorphic, so not a foreign key.';
COMMENT ON COLUMN crm.events.reminder_minutes IS 'Remind this many minutes before start_time; app-local, never synced (R12).';
COMMENT ON COLUMN crm.events.recurrence IS 'iCalendar RRULE text; app-local, never synced (R12).';
CREATE INDEX events_who_idx ON crm.events (who_id) WHERE who_id IS NOT NULL;
CREATE INDEX events_what_idx ON crm.events (what_module, what_id) WHERE what_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.events
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

CREATE TABLE crm.calls (
    id                     bigserial   NOT NULL,
    subject                text        NOT NULL,
    call_type              text        NOT NULL,
    call_start_time        timestamptz NOT NULL,
    call_duration_seconds  integer,
    description            text,
    who_id                 bigint,
    what_module            text,
    what_id                bigint,
    owner_id               bigint      NOT NULL,
    reminder_at            timestamptz,
    created_time           timestamptz NOT NULL DEFAULT now(),
    modified_time          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calls_pk PRIMARY KEY (id),
    CONSTRAINT calls_who_fk FOREIGN KEY (who_id) REFERENCES crm.contacts (id) ON DELETE SET NULL,
    CONSTRAINT calls_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id),
    CONSTRAINT calls_what_module_ck CHECK (what_module IN ('accounts', 'deals')),
    CONSTRAINT calls_what_ck CHECK ((what_module IS NULL) = (what_id IS NULL)),
    CONSTRAINT calls_type_ck CHECK (call_type IN ('Outbound', 'Inbound', 'Missed')),
    CONSTRAINT calls_duration_ck CHECK (call_duration_seconds >= 0)
);
COMMENT ON TABLE crm.calls IS 'Calls (logged or scheduled; activities). who_id is the contact; what_module/what_id the related account or deal. reminder_at is app-local and never synced (R12).';
COMMENT ON COLUMN crm.calls.who_id IS 'Related contact ("Contact Name").';
COMMENT ON COLUMN crm.calls.what_module IS 'accounts or deals: the table what_id points into; NULL when what_id is NULL.';
COMMENT ON COLUMN crm.calls.what_id IS 'id of the related account or deal ("Related To"); polymorphic, so not a foreign key.';
COMMENT ON COLUMN crm.calls.reminder_at IS 'Reminder for a scheduled call; app-local, never synced (R12).';
CREATE INDEX calls_who_idx ON crm.calls (who_id) WHERE who_id IS NOT NULL;
CREATE INDEX calls_what_idx ON crm.calls (what_module, what_id) WHERE what_id IS NOT NULL;
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.calls
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Notes (parent module + parent id, as in Zoho)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE crm.notes (
    id             bigserial   NOT NULL,
    note_title     text,
    note_content   text        NOT NULL,
    parent_module  text        NOT NULL,
    parent_id      bigint      NOT NULL,
    owner_id       bigint      NOT NULL,
    created_time   timestamptz NOT NULL DEFAULT now(),
    modified_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_pk PRIMARY KEY (id),
    CONSTRAINT notes_owner_fk FOREIGN KEY (owner_id) REFERENCES crm.users (id),
    CONSTRAINT notes_parent_module_ck CHECK (parent_module IN ('contacts', 'accounts', 'deals'))
);
COMMENT ON TABLE crm.notes IS 'Notes. parent_module names the parent''s table (contacts, accounts or deals) and parent_id its id; polymorphic, so not a foreign key.';
COMMENT ON COLUMN crm.notes.parent_id IS 'id of the parent record in the table named by parent_module.';
CREATE INDEX notes_parent_idx ON crm.notes (parent_module, parent_id);
CREATE TRIGGER set_modified_time BEFORE UPDATE ON crm.notes
    FOR EACH ROW EXECUTE FUNCTION crm.set_modified_time();

-- ---------------------------------------------------------------------------------------------
-- Views: the CRM's named list filters. A tab of the integration selects one per module (R7).
-- ---------------------------------------------------------------------------------------------

CREATE VIEW crm.all_accounts AS
    SELECT * FROM crm.accounts;
COMMENT ON VIEW crm.all_accounts IS 'List view "All Accounts": every account.';

CREATE VIEW crm.key_accounts AS
    SELECT * FROM crm.accounts WHERE annual_revenue >= 1000000;
COMMENT ON VIEW crm.key_accounts IS 'List view "Key Accounts": accounts with annual_revenue of at least 1,000,000.';

CREATE VIEW crm.all_contacts AS
    SELECT * FROM crm.contacts;
COMMENT ON VIEW crm.all_contacts IS 'List view "All Contacts": every contact.';

CREATE VIEW crm.contacts_with_email AS
    SELECT * FROM crm.contacts WHERE email IS NOT NULL;
COMMENT ON VIEW crm.contacts_with_email IS 'List view "Contacts with Email": contacts whose email is set.';

CREATE VIEW crm.all_deals AS
    SELECT * FROM crm.deals;
COMMENT ON VIEW crm.all_deals IS 'List view "All Deals": every deal.';

CREATE VIEW crm.open_deals AS
    SELECT * FROM crm.deals WHERE stage NOT LIKE 'Closed%';
COMMENT ON VIEW crm.open_deals IS 'List view "Open Deals": deals whose stage does not start with Closed.';

CREATE VIEW crm.all_products AS
    SELECT * FROM crm.products;
COMMENT ON VIEW crm.all_products IS 'List view "All Products": every product.';

CREATE VIEW crm.active_products AS
    SELECT * FROM crm.products WHERE product_active;
COMMENT ON VIEW crm.active_products IS 'List view "Active Products": products with product_active true.';

-- ---------------------------------------------------------------------------------------------
-- Reference data (configuration, not sample records)
-- ---------------------------------------------------------------------------------------------

INSERT INTO crm.pipelines (pipeline, is_default) VALUES
    ('Standard', true),
    ('Renewals', false);

INSERT INTO crm.stages (pipeline, stage, sequence, probability, forecast_category)
SELECT p.pipeline, s.stage, s.sequence, s.probability, s.forecast_category
FROM crm.pipelines AS p
CROSS JOIN (VALUES
    ('Qualification',             1,  10, 'Pipeline'),
    ('Needs Analysis',            2,  20, 'Pipeline'),
    ('Value Proposition',         3,  40, 'Pipeline'),
    ('Id. Decision Makers',       4,  60, 'Pipeline'),
    ('Proposal/Price Quote',      5,  75, 'Pipeline'),
    ('Negotiation/Review',        6,  90, 'Pipeline'),
    ('Closed Won',                7, 100, 'Closed'),
    ('Closed Lost',               8,   0, 'Omitted'),
    ('Closed Lost to Competition', 9,  0, 'Omitted')
) AS s (stage, sequence, probability, forecast_category)
ORDER BY p.id, s.sequence;

INSERT INTO crm.field_settings (table_name, column_name, mandatory, custom) VALUES
    ('accounts', 'account_name',  true,  false),
    ('contacts', 'last_name',     true,  false),
    ('contacts', 'customer_tier', false, true),
    ('deals',    'deal_name',     true,  false),
    ('deals',    'stage',         true,  false),
    ('products', 'product_name',  true,  false);
