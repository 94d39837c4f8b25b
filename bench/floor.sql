-- bench/floor.sql — the floor of benchmark (a): hand-written SQL that writes, in ONE transaction,
-- what the engine's initial sync of tab contacts_companies writes (issue 9.2).
--
-- Start state: the two reference apps filled by tandem_sample.generate, tandem installed,
-- configured with the default configuration and contacts_companies activated (exactly the state
-- before `tandem sync` in bench/run's (a)). Run with: psql -X -v ON_ERROR_STOP=1 -f bench/floor.sql
--
-- It writes what the engine writes, set-based and with no generality: the mapping of
-- Sources/TandemCore/ReferenceDefaults.swift (companies ⇄ accounts, contacts ⇄ contacts) spelled
-- out by hand, the engine's rules from Sources/TandemCore/ModuleCompiler*.swift:
--  - B3 match: unlinked records with the same normalized match value (company name / account
--    name, email), duplicates paired one to one in key order; links origin 'matched';
--  - every other record created on the other side (CRM records from the view all_accounts /
--    all_contacts), key from the target's own sequence, owner by email else the acting user
--    (R13), the contact's company through the companies' links; links origin 'pipeline' / 'crm';
--  - matched pairs merged without a mirror (B2 against an empty base): a field set on one side
--    only is written to the other; a field set on both sides to different values (the match
--    field only when it differs beyond case and spacing) is a conflict decided by the policy
--    (latest: the later modified_time wins, ties to the CRM app), recorded in
--    tandem.conflict_decisions, the winning value written to the losing side;
--  - a mirror per link: the hashes of both records' canonical values (value as jsonb, owner as the
--    lower-cased email, lookup as the parent's link id), read after the writes (migration 0012);
--  - the engine's writes are kept out of the change log as the engine does (tandem._applying),
--    and the tab is marked active with its initial sync complete.
-- Not written (bookkeeping the engine adds): tandem.runs rows, the initial_sync_complete event,
-- the tab's progress JSON. It need not be byte-identical: bench/run checks the row counts per
-- table against the engine's.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO tandem._applying (xid) VALUES (pg_current_xact_id());

CREATE TEMP TABLE f_ctx ON COMMIT DROP AS
SELECT integration_id AS iid, conflict_policy AS policy,
       pipeline_setup_user_id::bigint AS p_setup, crm_setup_user_id::bigint AS c_setup
  FROM tandem.integrations;

-- Owners by email (R13): each user of one app → the user of the other app with the same
-- lower-cased, trimmed email (lowest id), else the acting user.
CREATE TEMP TABLE f_owner_to_crm ON COMMIT DROP AS
SELECT p.id AS src, coalesce(c.id, (SELECT c_setup FROM f_ctx)) AS dst
  FROM pipeline.users p
  LEFT JOIN LATERAL (SELECT c.id FROM crm.users c WHERE lower(btrim(c.email)) = lower(btrim(p.email)) ORDER BY c.id LIMIT 1) c ON true;
CREATE TEMP TABLE f_owner_to_pipeline ON COMMIT DROP AS
SELECT c.id AS src, coalesce(p.id, (SELECT p_setup FROM f_ctx)) AS dst
  FROM crm.users c
  LEFT JOIN LATERAL (SELECT p.id FROM pipeline.users p WHERE lower(btrim(p.email)) = lower(btrim(c.email)) ORDER BY p.id LIMIT 1) p ON true;
ALTER TABLE f_owner_to_crm ADD PRIMARY KEY (src);
ALTER TABLE f_owner_to_pipeline ADD PRIMARY KEY (src);
ANALYZE f_ctx, f_owner_to_crm, f_owner_to_pipeline;

-- =============================================================================================
-- companies ⇄ accounts
-- =============================================================================================
-- B3: match on the normalized name, duplicates one to one in id order.
INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
SELECT (SELECT iid FROM f_ctx), 'companies', p.id::text, c.id::text, 'matched'
  FROM (SELECT id, k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
          FROM (SELECT id, lower(regexp_replace(btrim(company_name::text), '\s+', ' ', 'g')) AS k FROM pipeline.companies) s
         WHERE k <> '') p
  JOIN (SELECT id, k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
          FROM (SELECT id, lower(regexp_replace(btrim(account_name::text), '\s+', ' ', 'g')) AS k FROM crm.all_accounts) s
         WHERE k <> '') c USING (k, n);

-- The unmatched records of each side and the keys of their copies.
CREATE TEMP TABLE f_companies_to_crm ON COMMIT DROP AS
SELECT p.id AS src, nextval(pg_get_serial_sequence('crm.accounts', 'id')) AS new_id
  FROM pipeline.companies p
 WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'companies' AND l.pipeline_id = p.id::text);
CREATE TEMP TABLE f_companies_to_pipeline ON COMMIT DROP AS
SELECT c.id AS src, nextval(pg_get_serial_sequence('pipeline.companies', 'id')) AS new_id
  FROM crm.all_accounts c
 WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'companies' AND l.crm_id = c.id::text);

INSERT INTO crm.accounts (id, account_name, phone, website, description, billing_street, billing_city,
                          billing_state, billing_code, billing_country, owner_id)
SELECT w.new_id, p.company_name, p.phone, p.website, p.description, p.billing_street, p.billing_city,
       p.billing_state, p.billing_code, p.billing_country, o.dst
  FROM f_companies_to_crm w
  JOIN pipeline.companies p ON p.id = w.src
  JOIN f_owner_to_crm o ON o.src = p.owner_id;
INSERT INTO pipeline.companies (id, company_name, phone, website, description, billing_street, billing_city,
                                billing_state, billing_code, billing_country, owner_id)
SELECT w.new_id, c.account_name, c.phone, c.website, c.description, c.billing_street, c.billing_city,
       c.billing_state, c.billing_code, c.billing_country, o.dst
  FROM f_companies_to_pipeline w
  JOIN crm.accounts c ON c.id = w.src
  JOIN f_owner_to_pipeline o ON o.src = c.owner_id;
INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
SELECT (SELECT iid FROM f_ctx), 'companies', src::text, new_id::text, 'pipeline' FROM f_companies_to_crm
UNION ALL
SELECT (SELECT iid FROM f_ctx), 'companies', new_id::text, src::text, 'crm' FROM f_companies_to_pipeline;
-- Fresh statistics for what this transaction filled (the engine analyzes its work tables too).
ANALYZE tandem.links;

-- Matched pairs: the fields that differ, and which side wins (policy).
CREATE TEMP TABLE f_companies_diff ON COMMIT DROP AS
SELECT l.link_id, p.id AS pid, c.id AS cid, p.modified_time AS p_mod, c.modified_time AS c_mod,
       CASE WHEN f.cv IS NULL THEN 'c' WHEN f.pv IS NULL THEN 'p'
            WHEN x.policy = 'pipeline_wins' THEN 'c' WHEN x.policy = 'crm_wins' THEN 'p' WHEN x.policy = 'skip' THEN 'x'
            WHEN p.modified_time > c.modified_time THEN 'c' ELSE 'p' END AS act,
       (f.pv IS NOT NULL AND f.cv IS NOT NULL) AS conflict,
       f.field, f.pv, f.cv
  FROM tandem.links l
  JOIN pipeline.companies p ON p.id = l.pipeline_id::bigint
  JOIN crm.accounts c ON c.id = l.crm_id::bigint
  JOIN pipeline.users pu ON pu.id = p.owner_id
  JOIN crm.users cu ON cu.id = c.owner_id
 CROSS JOIN f_ctx x
 CROSS JOIN LATERAL (VALUES
        ('company_name:account_name', to_jsonb(p.company_name), to_jsonb(c.account_name),
         lower(regexp_replace(btrim(p.company_name), '\s+', ' ', 'g')) IS DISTINCT FROM lower(regexp_replace(btrim(c.account_name), '\s+', ' ', 'g'))),
        ('phone', to_jsonb(p.phone), to_jsonb(c.phone), NULL),
        ('website', to_jsonb(p.website), to_jsonb(c.website), NULL),
        ('description', to_jsonb(p.description), to_jsonb(c.description), NULL),
        ('billing_street', to_jsonb(p.billing_street), to_jsonb(c.billing_street), NULL),
        ('billing_city', to_jsonb(p.billing_city), to_jsonb(c.billing_city), NULL),
        ('billing_state', to_jsonb(p.billing_state), to_jsonb(c.billing_state), NULL),
        ('billing_code', to_jsonb(p.billing_code), to_jsonb(c.billing_code), NULL),
        ('billing_country', to_jsonb(p.billing_country), to_jsonb(c.billing_country), NULL),
        ('owner_id', to_jsonb(lower(btrim(pu.email))), to_jsonb(lower(btrim(cu.email))), NULL)
       ) f(field, pv, cv, normalized_differ)
 WHERE l.module = 'companies' AND l.origin = 'matched'
   AND f.pv IS DISTINCT FROM f.cv AND coalesce(f.normalized_differ, true);

INSERT INTO tandem.conflict_decisions (integration_id, link_id, module, field, pipeline_value, crm_value, winner, policy, reason)
SELECT x.iid, d.link_id, 'companies', d.field, d.pv, d.cv,
       CASE d.act WHEN 'c' THEN 'pipeline' WHEN 'p' THEN 'crm' ELSE 'none' END, x.policy,
       format('latest: pipeline app modified %s, CRM app modified %s', d.p_mod, d.c_mod) || ' (first sync of records matched on both sides)'
  FROM f_companies_diff d CROSS JOIN f_ctx x
 WHERE d.conflict;

CREATE TEMP TABLE f_companies_write ON COMMIT DROP AS
SELECT link_id, pid, cid, act, array_agg(field) AS fields FROM f_companies_diff WHERE act IN ('c', 'p') GROUP BY 1, 2, 3, 4;
ALTER TABLE f_companies_write ADD PRIMARY KEY (link_id, act);
ANALYZE f_companies_write;

UPDATE crm.accounts c SET
       account_name = CASE WHEN 'company_name:account_name' = ANY (w.fields) THEN p.company_name ELSE c.account_name END,
       phone = CASE WHEN 'phone' = ANY (w.fields) THEN p.phone ELSE c.phone END,
       website = CASE WHEN 'website' = ANY (w.fields) THEN p.website ELSE c.website END,
       description = CASE WHEN 'description' = ANY (w.fields) THEN p.description ELSE c.description END,
       billing_street = CASE WHEN 'billing_street' = ANY (w.fields) THEN p.billing_street ELSE c.billing_street END,
       billing_city = CASE WHEN 'billing_city' = ANY (w.fields) THEN p.billing_city ELSE c.billing_city END,
       billing_state = CASE WHEN 'billing_state' = ANY (w.fields) THEN p.billing_state ELSE c.billing_state END,
       billing_code = CASE WHEN 'billing_code' = ANY (w.fields) THEN p.billing_code ELSE c.billing_code END,
       billing_country = CASE WHEN 'billing_country' = ANY (w.fields) THEN p.billing_country ELSE c.billing_country END,
       owner_id = CASE WHEN 'owner_id' = ANY (w.fields) THEN o.dst ELSE c.owner_id END
  FROM f_companies_write w
  JOIN pipeline.companies p ON p.id = w.pid
  JOIN f_owner_to_crm o ON o.src = p.owner_id
 WHERE w.act = 'c' AND c.id = w.cid;
UPDATE pipeline.companies p SET
       company_name = CASE WHEN 'company_name:account_name' = ANY (w.fields) THEN c.account_name ELSE p.company_name END,
       phone = CASE WHEN 'phone' = ANY (w.fields) THEN c.phone ELSE p.phone END,
       website = CASE WHEN 'website' = ANY (w.fields) THEN c.website ELSE p.website END,
       description = CASE WHEN 'description' = ANY (w.fields) THEN c.description ELSE p.description END,
       billing_street = CASE WHEN 'billing_street' = ANY (w.fields) THEN c.billing_street ELSE p.billing_street END,
       billing_city = CASE WHEN 'billing_city' = ANY (w.fields) THEN c.billing_city ELSE p.billing_city END,
       billing_state = CASE WHEN 'billing_state' = ANY (w.fields) THEN c.billing_state ELSE p.billing_state END,
       billing_code = CASE WHEN 'billing_code' = ANY (w.fields) THEN c.billing_code ELSE p.billing_code END,
       billing_country = CASE WHEN 'billing_country' = ANY (w.fields) THEN c.billing_country ELSE p.billing_country END,
       owner_id = CASE WHEN 'owner_id' = ANY (w.fields) THEN o.dst ELSE p.owner_id END
  FROM f_companies_write w
  JOIN crm.accounts c ON c.id = w.cid
  JOIN f_owner_to_pipeline o ON o.src = c.owner_id
 WHERE w.act = 'p' AND p.id = w.pid;

-- A mirror per link: both records as they are now, as the hashes of their canonical values
-- (migration 0012: jsonb_hash_extended of to_jsonb; owners as the lower-cased email, lookups as the parent's link id),
-- each computed as the engine computes it without building the jsonb (CanonicalInput.hash: a text's
-- hashtextextended, an integer's hash_numeric_extended, xor the jsonb scalar mark),
-- the pipeline side's fields first, in the order of the module's layout.
INSERT INTO tandem.mirror_layouts (integration_id, module, fields)
VALUES ((SELECT iid FROM f_ctx), 'companies', ARRAY['company_name:account_name', 'phone', 'website', 'description', 'billing_street', 'billing_city', 'billing_state', 'billing_code', 'billing_country', 'owner_id'])
ON CONFLICT (integration_id, module, fields) WHERE forgotten = '{}' DO NOTHING;
INSERT INTO tandem.mirrors (link_id, layout_id, hashes, synced_at)
SELECT l.link_id,
       (SELECT layout_id FROM tandem.mirror_layouts WHERE module = 'companies' AND forgotten = '{}'
          AND fields = ARRAY['company_name:account_name', 'phone', 'website', 'description', 'billing_street', 'billing_city', 'billing_state', 'billing_code', 'billing_country', 'owner_id']),
       ARRAY[
           (hashtextextended((p.company_name)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((p.phone)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.website)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.description)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.billing_street)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.billing_city)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.billing_state)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.billing_code)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.billing_country)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((lower(btrim(pu.email)))::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.account_name)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((c.phone)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.website)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.description)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.billing_street)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.billing_city)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.billing_state)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.billing_code)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.billing_country)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((lower(btrim(cu.email)))::text COLLATE "C", 0) # -9223372034707292160)]::bigint[],
       now()
  FROM tandem.links l
  JOIN pipeline.companies p ON p.id = l.pipeline_id::bigint
  JOIN crm.accounts c ON c.id = l.crm_id::bigint
  LEFT JOIN pipeline.users pu ON pu.id = p.owner_id
  LEFT JOIN crm.users cu ON cu.id = c.owner_id
 WHERE l.module = 'companies';

-- =============================================================================================
-- contacts ⇄ contacts (the company through the companies' links)
-- =============================================================================================
INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
SELECT (SELECT iid FROM f_ctx), 'contacts', p.id::text, c.id::text, 'matched'
  FROM (SELECT id, k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
          FROM (SELECT id, lower(regexp_replace(btrim(email::text), '\s+', ' ', 'g')) AS k FROM pipeline.contacts) s
         WHERE k <> '') p
  JOIN (SELECT id, k, row_number() OVER (PARTITION BY k ORDER BY id) AS n
          FROM (SELECT id, lower(regexp_replace(btrim(email::text), '\s+', ' ', 'g')) AS k FROM crm.all_contacts) s
         WHERE k <> '') c USING (k, n);

CREATE TEMP TABLE f_company_links ON COMMIT DROP AS
SELECT link_id, pipeline_id::bigint AS pid, crm_id::bigint AS cid FROM tandem.links WHERE module = 'companies';
ALTER TABLE f_company_links ADD UNIQUE (pid), ADD UNIQUE (cid);
ANALYZE f_company_links;

CREATE TEMP TABLE f_contacts_to_crm ON COMMIT DROP AS
SELECT p.id AS src, nextval(pg_get_serial_sequence('crm.contacts', 'id')) AS new_id
  FROM pipeline.contacts p
 WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.pipeline_id = p.id::text);
CREATE TEMP TABLE f_contacts_to_pipeline ON COMMIT DROP AS
SELECT c.id AS src, nextval(pg_get_serial_sequence('pipeline.contacts', 'id')) AS new_id
  FROM crm.all_contacts c
 WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.crm_id = c.id::text);

INSERT INTO crm.contacts (id, first_name, last_name, email, phone, mobile, title, description, mailing_street,
                          mailing_city, mailing_state, mailing_zip, mailing_country, account_id, owner_id)
SELECT w.new_id, p.first_name, p.last_name, p.email, p.phone, p.mobile, p.title, p.description, p.mailing_street,
       p.mailing_city, p.mailing_state, p.mailing_zip, p.mailing_country, k.cid, o.dst
  FROM f_contacts_to_crm w
  JOIN pipeline.contacts p ON p.id = w.src
  JOIN f_owner_to_crm o ON o.src = p.owner_id
  LEFT JOIN f_company_links k ON k.pid = p.company_id;
INSERT INTO pipeline.contacts (id, first_name, last_name, email, phone, mobile, title, description, mailing_street,
                               mailing_city, mailing_state, mailing_zip, mailing_country, company_id, owner_id)
SELECT w.new_id, c.first_name, c.last_name, c.email, c.phone, c.mobile, c.title, c.description, c.mailing_street,
       c.mailing_city, c.mailing_state, c.mailing_zip, c.mailing_country, k.pid, o.dst
  FROM f_contacts_to_pipeline w
  JOIN crm.contacts c ON c.id = w.src
  JOIN f_owner_to_pipeline o ON o.src = c.owner_id
  LEFT JOIN f_company_links k ON k.cid = c.account_id;
INSERT INTO tandem.links (integration_id, module, pipeline_id, crm_id, origin)
SELECT (SELECT iid FROM f_ctx), 'contacts', src::text, new_id::text, 'pipeline' FROM f_contacts_to_crm
UNION ALL
SELECT (SELECT iid FROM f_ctx), 'contacts', new_id::text, src::text, 'crm' FROM f_contacts_to_pipeline;
ANALYZE tandem.links;

CREATE TEMP TABLE f_contacts_diff ON COMMIT DROP AS
SELECT l.link_id, p.id AS pid, c.id AS cid, p.modified_time AS p_mod, c.modified_time AS c_mod,
       CASE WHEN f.cv IS NULL THEN 'c' WHEN f.pv IS NULL THEN 'p'
            WHEN x.policy = 'pipeline_wins' THEN 'c' WHEN x.policy = 'crm_wins' THEN 'p' WHEN x.policy = 'skip' THEN 'x'
            WHEN p.modified_time > c.modified_time THEN 'c' ELSE 'p' END AS act,
       (f.pv IS NOT NULL AND f.cv IS NOT NULL) AS conflict,
       f.field, f.pv, f.cv
  FROM tandem.links l
  JOIN pipeline.contacts p ON p.id = l.pipeline_id::bigint
  JOIN crm.contacts c ON c.id = l.crm_id::bigint
  JOIN pipeline.users pu ON pu.id = p.owner_id
  JOIN crm.users cu ON cu.id = c.owner_id
  LEFT JOIN f_company_links pk ON pk.pid = p.company_id
  LEFT JOIN f_company_links ck ON ck.cid = c.account_id
 CROSS JOIN f_ctx x
 CROSS JOIN LATERAL (VALUES
        ('first_name', to_jsonb(p.first_name), to_jsonb(c.first_name), NULL),
        ('last_name', to_jsonb(p.last_name), to_jsonb(c.last_name), NULL),
        ('email', to_jsonb(p.email), to_jsonb(c.email),
         lower(regexp_replace(btrim(p.email), '\s+', ' ', 'g')) IS DISTINCT FROM lower(regexp_replace(btrim(c.email), '\s+', ' ', 'g'))),
        ('phone', to_jsonb(p.phone), to_jsonb(c.phone), NULL),
        ('mobile', to_jsonb(p.mobile), to_jsonb(c.mobile), NULL),
        ('title', to_jsonb(p.title), to_jsonb(c.title), NULL),
        ('description', to_jsonb(p.description), to_jsonb(c.description), NULL),
        ('mailing_street', to_jsonb(p.mailing_street), to_jsonb(c.mailing_street), NULL),
        ('mailing_city', to_jsonb(p.mailing_city), to_jsonb(c.mailing_city), NULL),
        ('mailing_state', to_jsonb(p.mailing_state), to_jsonb(c.mailing_state), NULL),
        ('mailing_zip', to_jsonb(p.mailing_zip), to_jsonb(c.mailing_zip), NULL),
        ('mailing_country', to_jsonb(p.mailing_country), to_jsonb(c.mailing_country), NULL),
        ('company_id:account_id', to_jsonb(pk.link_id), to_jsonb(ck.link_id), NULL),
        ('owner_id', to_jsonb(lower(btrim(pu.email))), to_jsonb(lower(btrim(cu.email))), NULL)
       ) f(field, pv, cv, normalized_differ)
 WHERE l.module = 'contacts' AND l.origin = 'matched'
   AND f.pv IS DISTINCT FROM f.cv AND coalesce(f.normalized_differ, true);

INSERT INTO tandem.conflict_decisions (integration_id, link_id, module, field, pipeline_value, crm_value, winner, policy, reason)
SELECT x.iid, d.link_id, 'contacts', d.field, d.pv, d.cv,
       CASE d.act WHEN 'c' THEN 'pipeline' WHEN 'p' THEN 'crm' ELSE 'none' END, x.policy,
       format('latest: pipeline app modified %s, CRM app modified %s', d.p_mod, d.c_mod) || ' (first sync of records matched on both sides)'
  FROM f_contacts_diff d CROSS JOIN f_ctx x
 WHERE d.conflict;

CREATE TEMP TABLE f_contacts_write ON COMMIT DROP AS
SELECT link_id, pid, cid, act, array_agg(field) AS fields FROM f_contacts_diff WHERE act IN ('c', 'p') GROUP BY 1, 2, 3, 4;
ALTER TABLE f_contacts_write ADD PRIMARY KEY (link_id, act);
ANALYZE f_contacts_write;

UPDATE crm.contacts c SET
       first_name = CASE WHEN 'first_name' = ANY (w.fields) THEN p.first_name ELSE c.first_name END,
       last_name = CASE WHEN 'last_name' = ANY (w.fields) THEN p.last_name ELSE c.last_name END,
       email = CASE WHEN 'email' = ANY (w.fields) THEN p.email ELSE c.email END,
       phone = CASE WHEN 'phone' = ANY (w.fields) THEN p.phone ELSE c.phone END,
       mobile = CASE WHEN 'mobile' = ANY (w.fields) THEN p.mobile ELSE c.mobile END,
       title = CASE WHEN 'title' = ANY (w.fields) THEN p.title ELSE c.title END,
       description = CASE WHEN 'description' = ANY (w.fields) THEN p.description ELSE c.description END,
       mailing_street = CASE WHEN 'mailing_street' = ANY (w.fields) THEN p.mailing_street ELSE c.mailing_street END,
       mailing_city = CASE WHEN 'mailing_city' = ANY (w.fields) THEN p.mailing_city ELSE c.mailing_city END,
       mailing_state = CASE WHEN 'mailing_state' = ANY (w.fields) THEN p.mailing_state ELSE c.mailing_state END,
       mailing_zip = CASE WHEN 'mailing_zip' = ANY (w.fields) THEN p.mailing_zip ELSE c.mailing_zip END,
       mailing_country = CASE WHEN 'mailing_country' = ANY (w.fields) THEN p.mailing_country ELSE c.mailing_country END,
       account_id = CASE WHEN 'company_id:account_id' = ANY (w.fields) THEN k.cid ELSE c.account_id END,
       owner_id = CASE WHEN 'owner_id' = ANY (w.fields) THEN o.dst ELSE c.owner_id END
  FROM f_contacts_write w
  JOIN pipeline.contacts p ON p.id = w.pid
  JOIN f_owner_to_crm o ON o.src = p.owner_id
  LEFT JOIN f_company_links k ON k.pid = p.company_id
 WHERE w.act = 'c' AND c.id = w.cid;
UPDATE pipeline.contacts p SET
       first_name = CASE WHEN 'first_name' = ANY (w.fields) THEN c.first_name ELSE p.first_name END,
       last_name = CASE WHEN 'last_name' = ANY (w.fields) THEN c.last_name ELSE p.last_name END,
       email = CASE WHEN 'email' = ANY (w.fields) THEN c.email ELSE p.email END,
       phone = CASE WHEN 'phone' = ANY (w.fields) THEN c.phone ELSE p.phone END,
       mobile = CASE WHEN 'mobile' = ANY (w.fields) THEN c.mobile ELSE p.mobile END,
       title = CASE WHEN 'title' = ANY (w.fields) THEN c.title ELSE p.title END,
       description = CASE WHEN 'description' = ANY (w.fields) THEN c.description ELSE p.description END,
       mailing_street = CASE WHEN 'mailing_street' = ANY (w.fields) THEN c.mailing_street ELSE p.mailing_street END,
       mailing_city = CASE WHEN 'mailing_city' = ANY (w.fields) THEN c.mailing_city ELSE p.mailing_city END,
       mailing_state = CASE WHEN 'mailing_state' = ANY (w.fields) THEN c.mailing_state ELSE p.mailing_state END,
       mailing_zip = CASE WHEN 'mailing_zip' = ANY (w.fields) THEN c.mailing_zip ELSE p.mailing_zip END,
       mailing_country = CASE WHEN 'mailing_country' = ANY (w.fields) THEN c.mailing_country ELSE p.mailing_country END,
       company_id = CASE WHEN 'company_id:account_id' = ANY (w.fields) THEN k.pid ELSE p.company_id END,
       owner_id = CASE WHEN 'owner_id' = ANY (w.fields) THEN o.dst ELSE p.owner_id END
  FROM f_contacts_write w
  JOIN crm.contacts c ON c.id = w.cid
  JOIN f_owner_to_pipeline o ON o.src = c.owner_id
  LEFT JOIN f_company_links k ON k.cid = c.account_id
 WHERE w.act = 'p' AND p.id = w.pid;

INSERT INTO tandem.mirror_layouts (integration_id, module, fields)
VALUES ((SELECT iid FROM f_ctx), 'contacts', ARRAY['first_name', 'last_name', 'email', 'phone', 'mobile', 'title', 'description', 'mailing_street', 'mailing_city', 'mailing_state', 'mailing_zip', 'mailing_country', 'company_id:account_id', 'owner_id'])
ON CONFLICT (integration_id, module, fields) WHERE forgotten = '{}' DO NOTHING;
INSERT INTO tandem.mirrors (link_id, layout_id, hashes, synced_at)
SELECT l.link_id,
       (SELECT layout_id FROM tandem.mirror_layouts WHERE module = 'contacts' AND forgotten = '{}'
          AND fields = ARRAY['first_name', 'last_name', 'email', 'phone', 'mobile', 'title', 'description', 'mailing_street', 'mailing_city', 'mailing_state', 'mailing_zip', 'mailing_country', 'company_id:account_id', 'owner_id']),
       ARRAY[
           (hashtextextended((p.first_name)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.last_name)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((p.email)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.phone)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((p.mobile)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.title)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((p.description)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.mailing_street)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.mailing_city)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.mailing_state)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.mailing_zip)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((p.mailing_country)::text COLLATE "C", 0) # -9223372034707292160),
           (hash_numeric_extended((pk.link_id)::numeric, 0) # -9223372034707292160),
           (hashtextextended((lower(btrim(pu.email)))::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.first_name)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.last_name)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((c.email)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.phone)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((c.mobile)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.title)::text COLLATE "C", 0) # -9223372034707292160), (hashtextextended((c.description)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.mailing_street)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.mailing_city)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.mailing_state)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.mailing_zip)::text COLLATE "C", 0) # -9223372034707292160),
           (hashtextextended((c.mailing_country)::text COLLATE "C", 0) # -9223372034707292160),
           (hash_numeric_extended((ck.link_id)::numeric, 0) # -9223372034707292160),
           (hashtextextended((lower(btrim(cu.email)))::text COLLATE "C", 0) # -9223372034707292160)]::bigint[],
       now()
  FROM tandem.links l
  JOIN pipeline.contacts p ON p.id = l.pipeline_id::bigint
  JOIN crm.contacts c ON c.id = l.crm_id::bigint
  LEFT JOIN pipeline.users pu ON pu.id = p.owner_id
  LEFT JOIN crm.users cu ON cu.id = c.owner_id
  LEFT JOIN f_company_links pk ON pk.pid = p.company_id
  LEFT JOIN f_company_links ck ON ck.cid = c.account_id
 WHERE l.module = 'contacts';

UPDATE tandem.tabs SET state = 'active', job = NULL, job_policy = NULL,
       initial_sync_completed_at = coalesce(initial_sync_completed_at, now())
 WHERE tab = 'contacts_companies';
DELETE FROM tandem._applying WHERE xid = pg_current_xact_id();
COMMIT;
