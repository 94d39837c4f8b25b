-- Tandem sample data: fills both reference apps (schemas pipeline and crm) with realistic,
-- partly overlapping records, set-based (generate_series, no per-row loops).
--
--     SELECT tandem_sample.generate(1000);        -- 1,000 records per module, 30 % overlap
--     SELECT tandem_sample.generate(100000, 50);  -- 100,000 per module, 50 % overlap
--
-- Load after pipeline.sql and crm.sql. Plain SQL only (psql -f or one PQexec string); no
-- BEGIN/COMMIT here. generate() runs once, on freshly loaded, empty schemas: it raises
-- SQLSTATE 55000 when either app already holds users or records. Its output is deterministic
-- for given arguments except the timestamps, which are relative to now().
-- See README.md in this folder for the users, the overlap rules and measured timings.

CREATE SCHEMA tandem_sample;
COMMENT ON SCHEMA tandem_sample IS 'Sample-data generator for the reference apps (pipeline, crm): tandem_sample.generate(records_per_module, overlap_percent). Helpers prefixed _ are private.';

-- ---------------------------------------------------------------------------------------------
-- Private helpers: small SQL functions, inlined by the planner into the set-based INSERTs.
-- ---------------------------------------------------------------------------------------------

-- A fast deterministic pseudo-random number in 0 .. 2^31-1 for item k, one stream per salt
-- (the built-in 64-bit integer hash, seeded with salt).
CREATE FUNCTION tandem_sample._h(k bigint, salt integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashint8extended(k, salt) & 2147483647;

-- Element number (k mod length) of a text array.
CREATE FUNCTION tandem_sample._pick(arr text[], k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN arr[1 + (k % cardinality(arr))::integer];

-- Whether item i (1-based) is one of the overlap_percent % shared with the other app: exactly
-- p of every 100 consecutive items, spread out (37 is coprime with 100).
CREATE FUNCTION tandem_sample._overlaps(i bigint, p integer, salt integer) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((i * 37 + salt) % 100) < p;

-- Record age in seconds: between one hour and three years.
CREATE FUNCTION tandem_sample._age(k bigint, salt integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 3600 + tandem_sample._h(k, salt) % 94608000;

CREATE FUNCTION tandem_sample._created(k bigint, salt integer) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
RETURN now() - tandem_sample._age(k, salt) * interval '1 second';

-- Modified between creation and now; about one record in six was never modified.
CREATE FUNCTION tandem_sample._modified(k bigint, salt integer) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
RETURN now() - (tandem_sample._age(k, salt) * least(1000, tandem_sample._h(k, salt + 1) % 1200) / 1000)
               * interval '1 second';

-- Owner ids. Users 1-6 and 8 are the same people in both apps (matched by email); user 7 exists
-- in one app only (olivia.pipeline@ / carl.crm@), user 8 is deactivated, user 1 is the admin.
CREATE FUNCTION tandem_sample._owner(k bigint, salt integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('{2,3,4,6,7,2,3,4,6,5,1,8,2,3,4,6}'::bigint[])[1 + (tandem_sample._h(k, salt) % 16)::integer];

-- People: 6 cultures x 4 first names x 4 last names (the last culture pairs them fixed), with
-- ASCII forms for the email address.
CREATE FUNCTION tandem_sample._first_index(k bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((tandem_sample._h(k, 1) % 6) * 4 + tandem_sample._h(k, 2) % 4)::integer;

CREATE FUNCTION tandem_sample._last_index(k bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((tandem_sample._h(k, 1) % 6) * 4
        + CASE WHEN tandem_sample._h(k, 1) % 6 = 5 THEN tandem_sample._h(k, 2) ELSE tandem_sample._h(k, 3) END % 4)::integer;

CREATE FUNCTION tandem_sample._first_name(k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN k % 41 = 0 THEN NULL ELSE ('{太郎,花子,健二,由美,José,Ana,Lucía,Mateo,Jürgen,Björn,Anna,Lena,François,Chloé,Zoë,Hélène,John,Olivia,Emma,Noah,Priya,Kwame,Mei,Ольга}'::text[])[1 + tandem_sample._first_index(k)] END;

CREATE FUNCTION tandem_sample._last_name(k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('{山田,佐藤,鈴木,高橋,López,García,Fernández,Núñez,Müller,Schröder,Weiß,Becker,Dubois,Lefèvre,Moreau,Girard,Smith,O''Brien,Brown,"van der Berg",Patel,Mensah,Chen,Иванова}'::text[])[1 + tandem_sample._last_index(k)];

CREATE FUNCTION tandem_sample._email(k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('{taro,hanako,kenji,yumi,jose,ana,lucia,mateo,juergen,bjoern,anna,lena,francois,chloe,zoe,helene,john,olivia,emma,noah,priya,kwame,mei,olga}'::text[])[1 + tandem_sample._first_index(k)]
    || '.'
    || ('{yamada,sato,suzuki,takahashi,lopez,garcia,fernandez,nunez,mueller,schroeder,weiss,becker,dubois,lefevre,moreau,girard,smith,obrien,brown,vanderberg,patel,mensah,chen,ivanova}'::text[])[1 + tandem_sample._last_index(k)]
    || '.' || k::text || '@'
    || tandem_sample._pick('{example.com,example.org,example.net,mail.example,corp.example}', tandem_sample._h(k, 4));

-- The same address written differently: case, surrounding spaces. lower(btrim()) is unchanged.
CREATE FUNCTION tandem_sample._email_variant(e text, v bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE v % 5
    WHEN 0 THEN e
    WHEN 1 THEN upper(e)
    WHEN 2 THEN initcap(e)
    WHEN 3 THEN ' ' || e || ' '
    ELSE upper(left(e, 1)) || substr(e, 2)
END;

-- The same name written differently: case, doubled inner spaces, surrounding spaces.
-- lower(regexp_replace(btrim(name), '\s+', ' ', 'g')) is unchanged.
CREATE FUNCTION tandem_sample._name_variant(s text, v bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE v % 6
    WHEN 0 THEN s
    WHEN 1 THEN lower(s)
    WHEN 2 THEN upper(s)
    WHEN 3 THEN replace(s, ' ', '  ') || ' '
    WHEN 4 THEN ' ' || lower(s) || ' '
    ELSE initcap(s)
END;

CREATE FUNCTION tandem_sample._company_name(k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN k % 11 = 0 THEN '株式会社' || tandem_sample._pick('{山田商事,東京テック,さくら物産,富士ソリューションズ,大阪精機}', k / 11) || ' ' || k::text
    WHEN k % 13 = 0 THEN tandem_sample._pick('{"Müller & Söhne","Café Zürich","Société d''Études Générales","Ñandú Exportaciones","Łódź Logistyka"}', k / 13) || ' ' || k::text
    ELSE tandem_sample._pick('{Acme,Globex,Initech,Umbrella,Northwind,Contoso,Fabrikam,Tailspin,Wayne,Stark,Blue,Green,Silver,Pacific,Atlas,Summit}', tandem_sample._h(k, 20))
        || ' ' || tandem_sample._pick('{Corp,Trading,Logistics,Systems,Foods,Labs,Partners,Media,Energy,Analytics,Robotics,Textiles,Holdings,Software,Consulting,Motors}', tandem_sample._h(k, 21))
        || ' ' || k::text
        || tandem_sample._pick('{""," Inc."," LLC"," GmbH"," Ltd"," S.A."," Corp"," & Co."}', tandem_sample._h(k, 22))
END;

CREATE FUNCTION tandem_sample._phone(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tandem_sample._h(k, salt) % 5 = 0 THEN NULL
    ELSE tandem_sample._pick('{"+1 415 555 ","+44 20 7946 ","+49 30 901820 ","+81 3-5555-","+33 1 70 36 ","+34 91 123 ","+91 44 2345 "}', tandem_sample._h(k, salt + 1))
         || lpad((tandem_sample._h(k, salt + 2) % 10000)::text, 4, '0')
END;

-- Address parts, all from one city index so that city, state and country agree.
CREATE FUNCTION tandem_sample._city_index(k bigint, salt integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tandem_sample._h(k, salt) % 6 = 0 THEN NULL ELSE tandem_sample._h(k, salt + 1) % 12 END;

CREATE FUNCTION tandem_sample._street(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tandem_sample._city_index(k, salt) IS NULL THEN NULL
    ELSE (1 + tandem_sample._h(k, salt + 2) % 400)::text || ' '
         || tandem_sample._pick('{"Market Street","Mission Street","Baker Street","Friedrichstraße","Leopoldstraße","銀座四丁目","梅田一丁目","Rue de Rivoli","Avenida Paulista","Anna Salai","Bahnhofstrasse","Calle de Alcalá"}', tandem_sample._city_index(k, salt))
END;

CREATE FUNCTION tandem_sample._city(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{"San Francisco","New York",London,Berlin,München,東京,大阪,Paris,"São Paulo",Chennai,Zürich,Madrid}', tandem_sample._city_index(k, salt));

CREATE FUNCTION tandem_sample._state(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{CA,NY,NULL,Berlin,Bayern,東京都,大阪府,Île-de-France,SP,"Tamil Nadu",ZH,Madrid}', tandem_sample._city_index(k, salt));

CREATE FUNCTION tandem_sample._zip(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN tandem_sample._city_index(k, salt) IS NULL THEN NULL ELSE CASE tandem_sample._city_index(k, salt)
    WHEN 0 THEN '941' || lpad((k % 100)::text, 2, '0')
    WHEN 1 THEN '100' || lpad((k % 100)::text, 2, '0')
    WHEN 2 THEN 'SW1A ' || (1 + k % 9)::text || 'AA'
    WHEN 5 THEN '104-' || lpad((k % 10000)::text, 4, '0')
    WHEN 6 THEN '530-' || lpad((k % 10000)::text, 4, '0')
    WHEN 8 THEN '01310-' || lpad((k % 1000)::text, 3, '0')
    ELSE lpad((10000 + k % 89999)::text, 5, '0')
END END;

CREATE FUNCTION tandem_sample._country(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{"United States","United States","United Kingdom",Germany,Germany,Japan,Japan,France,Brazil,India,Switzerland,Spain}', tandem_sample._city_index(k, salt));

-- Free text: mostly NULL; otherwise emoji, accents, Japanese, newlines, tabs, quotes and
-- backslashes; one record in 250 gets a 2,000-5,000 character description.
CREATE FUNCTION tandem_sample._text(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN k % 250 = 0 THEN left('Long description #' || k::text || E'.\n'
        || repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit — 🚀 naïve café, 東京. ', 80),
        (2000 + (k * 7) % 3000)::integer)
    WHEN tandem_sample._h(k, salt) % 10 < 6 THEN NULL
    ELSE (ARRAY[
        'Met at the trade show 🚀',
        'Prefers email over phone ✉️',
        E'Line one\nLine two\r\nLine three',
        'Quoted "VIP" customer – handle with care, it''s urgent',
        'Export path: C:\Temp\export.csv',
        E'Tab\tseparated\tvalues',
        '日本語のメモ：来週フォローアップ 📞',
        'Renewal due in Q3 ✅',
        'Café meeting — résumé sent 😀',
        'Flags 🇯🇵🇩🇪🇫🇷 and a ZWJ sequence 👩‍💻'
    ])[1 + (tandem_sample._h(k, salt + 1) % 10)::integer]
END;

CREATE FUNCTION tandem_sample._title(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{"Sales Manager",CEO,CTO,"Purchasing Manager","Head of Operations","Marketing Director",Engineer,営業部長,"Directeur commercial",NULL,"Office Manager",NULL}', tandem_sample._h(k, salt));

CREATE FUNCTION tandem_sample._product_name(k bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{"Cloud Storage","Support Plan","Onboarding Package",Widget,Sensor,Licence,Gateway,Router,"Analytics Add-on",Training,翻訳サービス,"Café Machine"}', tandem_sample._h(k, 70))
    || ' ' || tandem_sample._pick('{Basic,Pro,Enterprise,Mini,Max,XL,Lite,Plus}', tandem_sample._h(k, 71))
    || ' ' || k::text;

-- A unit price in 9.99 .. 2009.98.
CREATE FUNCTION tandem_sample._price(k bigint, salt integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (999 + (tandem_sample._h(k, salt) * 37) % 200000) / 100.0;

CREATE FUNCTION tandem_sample._deal_name(k bigint, salt integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tandem_sample._pick('{"Website redesign","Annual licence","Support renewal","Expansion – 50 seats",導入支援プロジェクト,"Pilot project","Hardware refresh","Consulting retainer","Migration to cloud","Équipement de bureau"}', tandem_sample._h(k, salt))
    || ' #' || k::text;

-- ---------------------------------------------------------------------------------------------
-- The generator
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION tandem_sample.generate(records_per_module integer, overlap_percent integer DEFAULT 30)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n  bigint  := records_per_module;                            -- companies, contacts, records, deals per app
    p  integer := overlap_percent;
    m  bigint  := greatest(10, records_per_module / 10);        -- products per app
    nt bigint  := greatest(1, records_per_module / 2);          -- tasks per app
    ne bigint  := greatest(1, records_per_module / 4);          -- events per app
    nc bigint  := greatest(1, records_per_module / 4);          -- calls per app
    nn bigint  := greatest(1, records_per_module / 2);          -- notes per app
    tbl record;
    deferred_ddl text[] := '{}';        -- secondary indexes and foreign keys, rebuilt at the end
    stmt text;
BEGIN
    IF n IS NULL OR n < 1 THEN
        RAISE EXCEPTION 'tandem_sample.generate: records_per_module must be at least 1 (got %)', records_per_module
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p IS NULL OR p NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'tandem_sample.generate: overlap_percent must be between 0 and 100 (got %)', overlap_percent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM pipeline.org) OR EXISTS (SELECT FROM pipeline.users)
       OR EXISTS (SELECT FROM pipeline.companies) OR EXISTS (SELECT FROM pipeline.contacts)
       OR EXISTS (SELECT FROM pipeline.pipeline_records) OR EXISTS (SELECT FROM pipeline.products)
       OR EXISTS (SELECT FROM pipeline.tasks) OR EXISTS (SELECT FROM pipeline.events)
       OR EXISTS (SELECT FROM pipeline.calls) OR EXISTS (SELECT FROM pipeline.notes)
       OR EXISTS (SELECT FROM crm.org) OR EXISTS (SELECT FROM crm.users)
       OR EXISTS (SELECT FROM crm.accounts) OR EXISTS (SELECT FROM crm.contacts)
       OR EXISTS (SELECT FROM crm.deals) OR EXISTS (SELECT FROM crm.products)
       OR EXISTS (SELECT FROM crm.tasks) OR EXISTS (SELECT FROM crm.events)
       OR EXISTS (SELECT FROM crm.calls) OR EXISTS (SELECT FROM crm.notes)
    THEN
        RAISE EXCEPTION 'tandem_sample.generate: the pipeline and crm schemas already hold data'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'generate() runs once, on freshly loaded schemas: load pipeline.sql, crm.sql and sample.sql into a new database.';
    END IF;

    -- Bulk-load technique: foreign keys and secondary indexes of both apps are dropped here and
    -- re-created, with their exact definitions, after the load. Building an index once and
    -- validating a foreign key with one join is many times faster than maintaining them row by
    -- row. All of it is transactional: on any error the schemas are left as they were. The
    -- re-created constraints validate every generated row.
    FOR tbl IN
        SELECT i.indexrelid::regclass AS idx, pg_get_indexdef(i.indexrelid) AS def,
               obj_description(i.indexrelid, 'pg_class') AS cmt
        FROM pg_index AS i
        JOIN pg_class AS c ON c.oid = i.indexrelid
        WHERE c.relnamespace IN ('pipeline'::regnamespace, 'crm'::regnamespace)
          AND NOT EXISTS (SELECT FROM pg_constraint AS k
                          WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
        ORDER BY i.indexrelid
    LOOP
        deferred_ddl := deferred_ddl || tbl.def;
        IF tbl.cmt IS NOT NULL THEN
            deferred_ddl := deferred_ddl || format('COMMENT ON INDEX %s IS %L', tbl.idx, tbl.cmt);
        END IF;
        EXECUTE format('DROP INDEX %s', tbl.idx);
    END LOOP;
    FOR tbl IN
        SELECT k.conrelid::regclass AS tab, k.conname, pg_get_constraintdef(k.oid) AS def,
               obj_description(k.oid, 'pg_constraint') AS cmt
        FROM pg_constraint AS k
        WHERE k.contype = 'f'
          AND k.connamespace IN ('pipeline'::regnamespace, 'crm'::regnamespace)
        ORDER BY k.oid
    LOOP
        deferred_ddl := deferred_ddl || format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl.tab, tbl.conname, tbl.def);
        IF tbl.cmt IS NOT NULL THEN
            deferred_ddl := deferred_ddl || format('COMMENT ON CONSTRAINT %I ON %s IS %L', tbl.conname, tbl.tab, tbl.cmt);
        END IF;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', tbl.tab, tbl.conname);
    END LOOP;

    -- Organisations and users ------------------------------------------------------------------

    INSERT INTO pipeline.org (id, org_name, edition) VALUES (1, 'Tandem Démo 株式会社', 'Premier');
    INSERT INTO crm.org (id, org_name, edition) VALUES (1, 'Tandem Démo 株式会社', 'Enterprise');

    INSERT INTO pipeline.users (id, email, full_name, profile, role, active) VALUES
        (1, 'admin@example.com',           'Alex Admin',      'Administrator', 'CEO',       true),
        (2, 'Ana.Lopez@example.com',       'Ana López',       'Standard',      'Sales Rep', true),
        (3, 'kenji.yamada@example.com',    '山田 健二',        'Standard',      'Sales Rep', true),
        (4, 'jose.muller@example.com',     'José Müller',     'Standard',      'Sales Rep', true),
        (5, 'priya.nair@example.com',      'Priya Nair',      'Administrator', 'Manager',   true),
        (6, 'marie.dubois@example.com',    'Marie Dubois',    'Standard',      'Manager',   true),
        (7, 'olivia.pipeline@example.com', 'Olivia Pipeline', 'Standard',      'Sales Rep', true),
        (8, 'former.rep@example.com',      'Former Rep',      'Standard',      'Sales Rep', false);

    INSERT INTO crm.users (id, email, full_name, profile, role, active) VALUES
        (1, 'admin@example.com',           'Alex Admin',      'Administrator', 'CEO',       true),
        (2, 'ana.lopez@example.com',       'Ana López',       'Standard',      'Sales Rep', true),
        (3, 'kenji.yamada@example.com',    '山田 健二',        'Standard',      'Sales Rep', true),
        (4, 'jose.muller@example.com',     'José Müller',     'Standard',      'Sales Rep', true),
        (5, 'priya.nair@example.com',      'Priya Nair',      'Administrator', 'Manager',   true),
        (6, 'Marie.Dubois@Example.com',    'Marie Dubois',    'Standard',      'Manager',   true),
        (7, 'carl.crm@example.com',        'Carl CRM',        'Standard',      'Sales Rep', true),
        (8, 'former.rep@example.com',      'Former Rep',      'Standard',      'Sales Rep', false);

    -- Companies / accounts ------------------------------------------------------------------
    -- Pipeline company i has identity k = i. CRM account j mirrors pipeline company i = n+1-j
    -- (ids differ on purpose): when i is an overlap item, the account has k = i and the same
    -- name written differently; otherwise k = n+i, a name the pipeline app does not have.

    INSERT INTO pipeline.companies (id, company_name, phone, website, description,
        billing_street, billing_city, billing_state, billing_code, billing_country,
        owner_id, created_time, modified_time)
    SELECT i,
           CASE WHEN i % 10 = 7 THEN replace(tandem_sample._company_name(i), ' ', '  ')
                ELSE tandem_sample._company_name(i) END,
           tandem_sample._phone(i, 10),
           CASE WHEN tandem_sample._h(i, 14) % 4 = 0 THEN NULL ELSE 'https://www.company' || i || '.example' END,
           tandem_sample._text(i, 15),
           tandem_sample._street(i, 30), tandem_sample._city(i, 30), tandem_sample._state(i, 30),
           tandem_sample._zip(i, 30), tandem_sample._country(i, 30),
           tandem_sample._owner(i, 16),
           tandem_sample._created(i, 17), tandem_sample._modified(i, 17)
    FROM generate_series(1, n) AS i;

    INSERT INTO crm.accounts (id, account_name, phone, website, description,
        billing_street, billing_city, billing_state, billing_code, billing_country,
        industry, annual_revenue, owner_id, created_time, modified_time)
    SELECT j,
           CASE WHEN ov THEN tandem_sample._name_variant(base_name, j) ELSE base_name END,
           tandem_sample._phone(k, 10),
           CASE WHEN tandem_sample._h(k, 14) % 4 = 0 THEN NULL ELSE 'https://www.company' || k || '.example' END,
           tandem_sample._text(j, 115),
           tandem_sample._street(k, 30), tandem_sample._city(k, 30), tandem_sample._state(k, 30),
           tandem_sample._zip(k, 30), tandem_sample._country(k, 30),
           tandem_sample._pick('{Technology,Manufacturing,Retail,Healthcare,Finance,Education,NULL,Government}', tandem_sample._h(j, 118)),
           CASE WHEN tandem_sample._h(j, 119) % 5 = 0 THEN NULL
                WHEN tandem_sample._h(j, 120) % 100 < 15 THEN 1000000 + (tandem_sample._h(j, 121) * 7919) % 49000000
                ELSE 10000 + (tandem_sample._h(j, 121) * 15) % 990000 END,
           tandem_sample._owner(k, 16),
           tandem_sample._created(j, 117), tandem_sample._modified(j, 117)
    FROM (SELECT j, ov, k, tandem_sample._company_name(k) AS base_name
          FROM (SELECT j, ov, CASE WHEN ov THEN i ELSE n + i END AS k
                FROM (SELECT j, n + 1 - j AS i, tandem_sample._overlaps(n + 1 - j, p, 0) AS ov
                      FROM generate_series(1, n) AS j) AS a) AS b
          OFFSET 0) AS c;  -- OFFSET 0 keeps base_name a plain column, so _name_variant is inlined

    -- Contacts -------------------------------------------------------------------------------
    -- Same scheme (salt 11 for the overlap choice): an overlapping CRM contact has the same
    -- person and email (written differently), a non-overlapping one a person/email of its own.
    -- Contact i belongs to company 1 + (7919 i + 13) mod n (about 1 in 8 has none); its CRM twin
    -- belongs to that company's twin account.

    INSERT INTO pipeline.contacts (id, first_name, last_name, email, phone, mobile, title, company_id,
        description, mailing_street, mailing_city, mailing_state, mailing_zip, mailing_country,
        preferred_language, owner_id, created_time, modified_time)
    SELECT i,
           tandem_sample._first_name(i), tandem_sample._last_name(i),
           CASE WHEN NOT tandem_sample._overlaps(i, p, 11) AND i % 19 = 0 THEN NULL
                WHEN i % 9 = 4 THEN initcap(tandem_sample._email(i))
                ELSE tandem_sample._email(i) END,
           tandem_sample._phone(i, 40), tandem_sample._phone(i, 43),
           tandem_sample._title(i, 46),
           CASE WHEN tandem_sample._h(i, 50) % 8 = 0 THEN NULL ELSE 1 + (i * 7919 + 13) % n END,
           tandem_sample._text(i, 51),
           tandem_sample._street(i, 55), tandem_sample._city(i, 55), tandem_sample._state(i, 55),
           tandem_sample._zip(i, 55), tandem_sample._country(i, 55),
           CASE WHEN tandem_sample._h(i, 58) % 3 = 0 THEN NULL
                ELSE tandem_sample._pick('{Japanese,Spanish,German,French,English,English}', tandem_sample._h(i, 1)) END,
           tandem_sample._owner(i, 16),
           tandem_sample._created(i, 52), tandem_sample._modified(i, 52)
    FROM generate_series(1, n) AS i;

    INSERT INTO crm.contacts (id, first_name, last_name, email, phone, mobile, title, account_id,
        description, mailing_street, mailing_city, mailing_state, mailing_zip, mailing_country,
        lead_source, customer_tier, owner_id, created_time, modified_time)
    SELECT j,
           tandem_sample._first_name(k), tandem_sample._last_name(k),
           CASE WHEN ov THEN tandem_sample._email_variant(base_email, j)
                WHEN j % 17 = 0 THEN NULL
                ELSE base_email END,
           tandem_sample._phone(k, 40), tandem_sample._phone(k, 43),
           CASE WHEN j % 10 = 0 THEN tandem_sample._title(j, 146) ELSE tandem_sample._title(k, 46) END,
           CASE WHEN tandem_sample._h(i, 50) % 8 = 0 THEN NULL ELSE n - (i * 7919 + 13) % n END,
           tandem_sample._text(j, 151),
           tandem_sample._street(k, 55), tandem_sample._city(k, 55), tandem_sample._state(k, 55),
           tandem_sample._zip(k, 55), tandem_sample._country(k, 55),
           tandem_sample._pick('{Advertisement,"Cold Call","Employee Referral","External Referral",Partner,"Trade Show","Web Research",Chat,NULL,NULL}', tandem_sample._h(j, 156)),
           tandem_sample._pick('{Gold,Silver,Bronze,NULL,NULL,NULL}', tandem_sample._h(j, 157)),
           tandem_sample._owner(k, 16),
           tandem_sample._created(j, 152), tandem_sample._modified(j, 152)
    FROM (SELECT j, i, ov, k, tandem_sample._email(k) AS base_email
          FROM (SELECT j, i, ov, CASE WHEN ov THEN i ELSE n + i END AS k
                FROM (SELECT j, n + 1 - j AS i, tandem_sample._overlaps(n + 1 - j, p, 11) AS ov
                      FROM generate_series(1, n) AS j) AS a) AS b
          OFFSET 0) AS c;  -- OFFSET 0 keeps base_email a plain column, so _email_variant is inlined

    -- Products -------------------------------------------------------------------------------
    -- m per app. Overlapping products (salt 23) share product_code 'PRD-nnnnnn'; the others
    -- have codes of their own app ('BGN-…' / 'ZC-…') or none.

    INSERT INTO pipeline.products (id, product_name, product_code, unit_price, description, active,
        owner_id, created_time, modified_time)
    SELECT k,
           tandem_sample._product_name(k),
           CASE WHEN tandem_sample._overlaps(k, p, 23) THEN 'PRD-' || lpad(k::text, 6, '0')
                WHEN k % 7 = 0 THEN NULL
                ELSE 'BGN-' || lpad(k::text, 6, '0') END,
           CASE WHEN k % 23 = 0 THEN NULL ELSE tandem_sample._price(k, 72) END,
           tandem_sample._text(k, 73),
           k % 17 <> 0,
           tandem_sample._owner(k, 74),
           tandem_sample._created(k, 75), tandem_sample._modified(k, 75)
    FROM generate_series(1, m) AS k;

    INSERT INTO crm.products (id, product_name, product_code, unit_price, description, product_active,
        owner_id, created_time, modified_time)
    SELECT j,
           CASE WHEN ov AND j % 5 = 0 THEN upper(tandem_sample._product_name(k))
                ELSE tandem_sample._product_name(k) END,
           CASE WHEN ov THEN 'PRD-' || lpad(k::text, 6, '0')
                WHEN j % 7 = 0 THEN NULL
                ELSE 'ZC-' || lpad(j::text, 6, '0') END,
           CASE WHEN ov AND j % 4 = 0 THEN tandem_sample._price(k, 172) ELSE tandem_sample._price(k, 72) END,
           tandem_sample._text(j, 173),
           j % 13 <> 0,
           tandem_sample._owner(k, 74),
           tandem_sample._created(j, 175), tandem_sample._modified(j, 175)
    FROM (SELECT j, ov, CASE WHEN ov THEN i ELSE m + i END AS k
          FROM (SELECT j, m + 1 - j AS i, tandem_sample._overlaps(m + 1 - j, p, 23) AS ov
                FROM generate_series(1, m) AS j) AS a) AS b;

    -- Pipeline records / deals ----------------------------------------------------------------
    -- Parents are spread over all companies/contacts, so about overlap_percent of them point
    -- at overlapping records. Stages are valid for each app.

    INSERT INTO pipeline.pipeline_records (id, record_name, team_pipeline, sub_pipeline, stage, amount,
        closing_date, company_id, contact_id, description, owner_id, created_time, modified_time)
    SELECT r,
           tandem_sample._deal_name(r, 80),
           'Sales Pipeline',
           CASE WHEN r % 5 = 0 THEN 'Renewals' ELSE 'Standard' END,
           tandem_sample._pick('{Qualification,"Needs Identified","Proposal/Price Quote","Negotiation/Review","Closed Won","Closed Lost"}', tandem_sample._h(r, 81)),
           CASE WHEN r % 13 = 0 THEN NULL ELSE (50000 + (tandem_sample._h(r, 82) * 1531) % 99950000) / 100.0 END,
           CASE WHEN r % 11 = 0 THEN NULL ELSE current_date - 180 + (tandem_sample._h(r, 83) % 365)::integer END,
           CASE WHEN r % 9 = 0 THEN NULL ELSE 1 + (r * 104729 + 7) % n END,
           CASE WHEN r % 6 = 0 THEN NULL ELSE 1 + (r * 15485863) % n END,
           tandem_sample._text(r, 84),
           tandem_sample._owner(r, 85),
           tandem_sample._created(r, 86), tandem_sample._modified(r, 86)
    FROM generate_series(1, n) AS r;

    INSERT INTO crm.deals (id, deal_name, pipeline, stage, amount, closing_date, account_id, contact_id,
        probability, description, owner_id, created_time, modified_time)
    SELECT d,
           tandem_sample._deal_name(d, 180),
           CASE WHEN d % 5 = 0 THEN 'Renewals' ELSE 'Standard' END,
           ('{Qualification,"Needs Analysis","Value Proposition","Id. Decision Makers","Proposal/Price Quote","Negotiation/Review","Closed Won","Closed Lost","Closed Lost to Competition"}'::text[])[s],
           CASE WHEN d % 13 = 0 THEN NULL ELSE (50000 + (tandem_sample._h(d, 182) * 1531) % 99950000) / 100.0 END,
           CASE WHEN d % 11 = 0 THEN NULL ELSE current_date - 180 + (tandem_sample._h(d, 183) % 365)::integer END,
           CASE WHEN d % 9 = 0 THEN NULL ELSE 1 + (d * 104729 + 7) % n END,
           CASE WHEN d % 6 = 0 THEN NULL ELSE 1 + (d * 15485863) % n END,
           CASE WHEN d % 8 = 0 THEN NULL ELSE ('{10,20,40,60,75,90,100,0,0}'::integer[])[s] END,
           tandem_sample._text(d, 184),
           tandem_sample._owner(d, 185),
           tandem_sample._created(d, 186), tandem_sample._modified(d, 186)
    FROM (SELECT d, 1 + (tandem_sample._h(d, 181) % 9)::integer AS s FROM generate_series(1, n) AS d) AS a;

    -- Products attached to records / deals: 0, 1 or 2 per record (n in all).
    INSERT INTO pipeline.pipeline_record_products (id, pipeline_record_id, product_id, quantity, list_price,
        created_time, modified_time)
    SELECT row_number() OVER (), x.r, x.product_id, x.quantity,
           CASE WHEN x.r % 4 = 0 THEN round(pr.unit_price * 0.9, 2) ELSE pr.unit_price END,
           tandem_sample._created(x.r, 86), tandem_sample._created(x.r, 86)
    FROM (SELECT r, 1 + (r * 31 + c) % m AS product_id, 1 + (r + c) % 5 AS quantity
          FROM generate_series(1, n) AS r
          CROSS JOIN LATERAL generate_series(1, (r % 3)::integer) AS c) AS x
    JOIN pipeline.products AS pr ON pr.id = x.product_id;

    INSERT INTO crm.deal_products (id, deal_id, product_id, quantity, list_price, created_time, modified_time)
    SELECT row_number() OVER (), x.d, x.product_id, x.quantity,
           CASE WHEN x.d % 4 = 0 THEN round(pr.unit_price * 0.9, 2) ELSE pr.unit_price END,
           tandem_sample._created(x.d, 186), tandem_sample._created(x.d, 186)
    FROM (SELECT d, 1 + (d * 31 + c) % m AS product_id, 1 + (d + c) % 5 AS quantity
          FROM generate_series(1, n) AS d
          CROSS JOIN LATERAL generate_series(1, (d % 3)::integer) AS c) AS x
    JOIN crm.products AS pr ON pr.id = x.product_id;

    -- Activities -----------------------------------------------------------------------------
    -- Pipeline: related to a contact, a pipeline record, or both. CRM: who_id (contact) and/or
    -- what_module/what_id (account or deal). Some have reminders and recurrence (never synced).

    INSERT INTO pipeline.tasks (id, subject, due_date, status, priority, description, contact_id,
        pipeline_record_id, owner_id, reminder_at, recurrence, created_time, modified_time)
    SELECT t,
           tandem_sample._pick('{"Follow up","Call back","Send proposal","Prepare demo",見積書を送付,"Envoyer le devis","Check contract 📄"}', tandem_sample._h(t, 90)) || ' #' || t,
           CASE WHEN t % 7 = 0 THEN NULL ELSE current_date - 30 + (tandem_sample._h(t, 91) % 90)::integer END,
           tandem_sample._pick('{"Not Started","Not Started","In Progress",Completed,Deferred,"Waiting for input"}', tandem_sample._h(t, 92)),
           tandem_sample._pick('{Normal,Normal,High,Highest,Low,Lowest,NULL}', tandem_sample._h(t, 93)),
           tandem_sample._text(t, 94),
           CASE WHEN t % 3 <> 2 THEN 1 + (t * 7 + 3) % n END,
           CASE WHEN t % 3 <> 0 THEN 1 + (t * 11 + 5) % n END,
           tandem_sample._owner(t, 95),
           CASE WHEN t % 4 = 0 THEN date_trunc('day', now()) + ((tandem_sample._h(t, 96) % 60) - 20) * interval '1 day' + interval '9 hours' END,
           CASE WHEN t % 10 = 0 THEN 'FREQ=WEEKLY;INTERVAL=1;COUNT=10'
                WHEN t % 25 = 3 THEN 'FREQ=MONTHLY;BYMONTHDAY=1' END,
           tandem_sample._created(t, 97), tandem_sample._modified(t, 97)
    FROM generate_series(1, nt) AS t;

    INSERT INTO crm.tasks (id, subject, due_date, status, priority, description, who_id,
        what_module, what_id, owner_id, reminder_at, recurrence, created_time, modified_time)
    SELECT t,
           tandem_sample._pick('{"Follow up","Call back","Send proposal","Prepare demo",見積書を送付,"Envoyer le devis","Check contract 📄"}', tandem_sample._h(t, 190)) || ' #' || t,
           CASE WHEN t % 7 = 0 THEN NULL ELSE current_date - 30 + (tandem_sample._h(t, 191) % 90)::integer END,
           tandem_sample._pick('{"Not Started","Not Started","In Progress",Completed,Deferred,"Waiting for input"}', tandem_sample._h(t, 192)),
           tandem_sample._pick('{Normal,Normal,High,Highest,Low,Lowest,NULL}', tandem_sample._h(t, 193)),
           tandem_sample._text(t, 194),
           CASE WHEN t % 4 IN (0, 1) THEN 1 + (t * 7 + 3) % n END,
           CASE t % 4 WHEN 1 THEN 'deals' WHEN 2 THEN 'deals' WHEN 3 THEN 'accounts' END,
           CASE t % 4 WHEN 1 THEN 1 + (t * 11 + 5) % n WHEN 2 THEN 1 + (t * 11 + 5) % n WHEN 3 THEN 1 + (t * 13 + 1) % n END,
           tandem_sample._owner(t, 195),
           CASE WHEN t % 4 = 2 THEN date_trunc('day', now()) + ((tandem_sample._h(t, 196) % 60) - 20) * interval '1 day' + interval '10 hours' END,
           CASE WHEN t % 10 = 5 THEN 'FREQ=DAILY;INTERVAL=2;COUNT=5'
                WHEN t % 25 = 7 THEN 'FREQ=MONTHLY;BYMONTHDAY=15' END,
           tandem_sample._created(t, 197), tandem_sample._modified(t, 197)
    FROM generate_series(1, nt) AS t;

    INSERT INTO pipeline.events (id, title, start_time, end_time, venue, description, contact_id,
        pipeline_record_id, owner_id, reminder_minutes, recurrence, created_time, modified_time)
    SELECT e,
           tandem_sample._pick('{"Kick-off meeting",Demo,"Quarterly review",商談,"Déjeuner d''affaires","Contract signing ✍️"}', tandem_sample._h(e, 100)) || ' #' || e,
           st, st + (30 * (1 + e % 4)) * interval '1 minute',
           tandem_sample._pick('{Zoom,"Google Meet","東京本社 会議室A","Café Zürich","Client office",NULL,NULL}', tandem_sample._h(e, 102)),
           tandem_sample._text(e, 103),
           CASE WHEN e % 3 <> 2 THEN 1 + (e * 17 + 2) % n END,
           CASE WHEN e % 3 <> 0 THEN 1 + (e * 19 + 3) % n END,
           tandem_sample._owner(e, 104),
           CASE WHEN e % 3 = 0 THEN 15 WHEN e % 5 = 0 THEN 60 END,
           CASE WHEN e % 12 = 0 THEN 'FREQ=WEEKLY;BYDAY=MO;COUNT=8' END,
           tandem_sample._created(e, 105), tandem_sample._modified(e, 105)
    FROM (SELECT e, date_trunc('hour', now()) + ((tandem_sample._h(e, 101) % 2000) - 1000) * interval '1 hour' AS st
          FROM generate_series(1, ne) AS e) AS a;

    INSERT INTO crm.events (id, title, start_time, end_time, venue, description, who_id,
        what_module, what_id, owner_id, reminder_minutes, recurrence, created_time, modified_time)
    SELECT e,
           tandem_sample._pick('{"Kick-off meeting",Demo,"Quarterly review",商談,"Déjeuner d''affaires","Contract signing ✍️"}', tandem_sample._h(e, 200)) || ' #' || e,
           st, st + (30 * (1 + e % 4)) * interval '1 minute',
           tandem_sample._pick('{Zoom,"Google Meet","東京本社 会議室A","Café Zürich","Client office",NULL,NULL}', tandem_sample._h(e, 202)),
           tandem_sample._text(e, 203),
           CASE WHEN e % 4 IN (0, 1) THEN 1 + (e * 17 + 2) % n END,
           CASE e % 4 WHEN 1 THEN 'deals' WHEN 2 THEN 'accounts' WHEN 3 THEN 'deals' END,
           CASE e % 4 WHEN 1 THEN 1 + (e * 19 + 3) % n WHEN 2 THEN 1 + (e * 23 + 4) % n WHEN 3 THEN 1 + (e * 19 + 3) % n END,
           tandem_sample._owner(e, 204),
           CASE WHEN e % 3 = 1 THEN 30 WHEN e % 7 = 0 THEN 1440 END,
           CASE WHEN e % 12 = 6 THEN 'FREQ=MONTHLY;BYDAY=1TU;COUNT=6' END,
           tandem_sample._created(e, 205), tandem_sample._modified(e, 205)
    FROM (SELECT e, date_trunc('hour', now()) + ((tandem_sample._h(e, 201) % 2000) - 1000) * interval '1 hour' AS st
          FROM generate_series(1, ne) AS e) AS a;

    -- Calls: past inbound/missed/outbound calls are logged (with a duration unless missed);
    -- about one in six is an outbound call scheduled in the future, some with a reminder.
    INSERT INTO pipeline.calls (id, subject, call_type, call_start_time, call_duration_seconds, description,
        contact_id, pipeline_record_id, owner_id, reminder_at, created_time, modified_time)
    SELECT c,
           tandem_sample._pick('{"Intro call","Follow-up call","Support call",折り返し電話,"Appel de suivi"}', tandem_sample._h(c, 110)) || ' #' || c,
           ty, st,
           CASE WHEN ty = 'Missed' OR st > now() THEN NULL ELSE 30 + tandem_sample._h(c, 112) % 3600 END,
           tandem_sample._text(c, 113),
           CASE WHEN c % 3 <> 2 THEN 1 + (c * 29 + 1) % n END,
           CASE WHEN c % 3 <> 0 THEN 1 + (c * 31 + 7) % n END,
           tandem_sample._owner(c, 114),
           CASE WHEN st > now() AND c % 4 < 2 THEN st - interval '15 minutes' END,
           tandem_sample._created(c, 115), tandem_sample._modified(c, 115)
    FROM (SELECT c, ty,
                 CASE WHEN ty = 'Outbound' AND c % 2 = 0 THEN date_trunc('minute', now()) + (1 + tandem_sample._h(c, 111) % 500) * interval '1 hour'
                      ELSE date_trunc('minute', now()) - (1 + tandem_sample._h(c, 111) % 5000) * interval '1 hour' END AS st
          FROM (SELECT c, tandem_sample._pick('{Outbound,Outbound,Inbound,Missed}', tandem_sample._h(c, 116)) AS ty
                FROM generate_series(1, nc) AS c) AS a) AS b;

    INSERT INTO crm.calls (id, subject, call_type, call_start_time, call_duration_seconds, description,
        who_id, what_module, what_id, owner_id, reminder_at, created_time, modified_time)
    SELECT c,
           tandem_sample._pick('{"Intro call","Follow-up call","Support call",折り返し電話,"Appel de suivi"}', tandem_sample._h(c, 210)) || ' #' || c,
           ty, st,
           CASE WHEN ty = 'Missed' OR st > now() THEN NULL ELSE 30 + tandem_sample._h(c, 212) % 3600 END,
           tandem_sample._text(c, 213),
           CASE WHEN c % 4 IN (0, 1, 3) THEN 1 + (c * 29 + 1) % n END,
           CASE c % 4 WHEN 1 THEN 'deals' WHEN 2 THEN 'deals' WHEN 3 THEN 'accounts' END,
           CASE c % 4 WHEN 1 THEN 1 + (c * 31 + 7) % n WHEN 2 THEN 1 + (c * 31 + 7) % n WHEN 3 THEN 1 + (c * 37 + 9) % n END,
           tandem_sample._owner(c, 214),
           CASE WHEN st > now() AND c % 4 < 2 THEN st - interval '30 minutes' END,
           tandem_sample._created(c, 215), tandem_sample._modified(c, 215)
    FROM (SELECT c, ty,
                 CASE WHEN ty = 'Outbound' AND c % 2 = 1 THEN date_trunc('minute', now()) + (1 + tandem_sample._h(c, 211) % 500) * interval '1 hour'
                      ELSE date_trunc('minute', now()) - (1 + tandem_sample._h(c, 211) % 5000) * interval '1 hour' END AS st
          FROM (SELECT c, tandem_sample._pick('{Outbound,Outbound,Inbound,Missed}', tandem_sample._h(c, 216)) AS ty
                FROM generate_series(1, nc) AS c) AS a) AS b;

    -- Notes ------------------------------------------------------------------------------------

    INSERT INTO pipeline.notes (id, note_title, note_content, parent_module, contact_id, company_id,
        pipeline_record_id, owner_id, created_time, modified_time)
    SELECT k,
           CASE WHEN k % 4 = 0 THEN NULL
                ELSE tandem_sample._pick('{"Call summary","Meeting notes",要約,"Compte rendu","Next steps ➡️"}', tandem_sample._h(k, 120)) END,
           coalesce(tandem_sample._text(k, 121), 'Note #' || k || ': spoke with the customer; next step agreed.'),
           CASE k % 3 WHEN 0 THEN 'contacts' WHEN 1 THEN 'companies' ELSE 'pipeline_records' END,
           CASE WHEN k % 3 = 0 THEN 1 + (k * 13 + 1) % n END,
           CASE WHEN k % 3 = 1 THEN 1 + (k * 17 + 2) % n END,
           CASE WHEN k % 3 = 2 THEN 1 + (k * 19 + 3) % n END,
           tandem_sample._owner(k, 122),
           tandem_sample._created(k, 123), tandem_sample._modified(k, 123)
    FROM generate_series(1, nn) AS k;

    INSERT INTO crm.notes (id, note_title, note_content, parent_module, parent_id, owner_id,
        created_time, modified_time)
    SELECT k,
           CASE WHEN k % 4 = 1 THEN NULL
                ELSE tandem_sample._pick('{"Call summary","Meeting notes",要約,"Compte rendu","Next steps ➡️"}', tandem_sample._h(k, 220)) END,
           coalesce(tandem_sample._text(k, 221), 'Note #' || k || ': customer asked for a revised quote.'),
           CASE k % 3 WHEN 0 THEN 'contacts' WHEN 1 THEN 'accounts' ELSE 'deals' END,
           CASE k % 3 WHEN 0 THEN 1 + (k * 13 + 1) % n WHEN 1 THEN 1 + (k * 17 + 2) % n ELSE 1 + (k * 19 + 3) % n END,
           tandem_sample._owner(k, 222),
           tandem_sample._created(k, 223), tandem_sample._modified(k, 223)
    FROM generate_series(1, nn) AS k;

    -- Indexes and foreign keys back, in their original order (indexes first). ------------------
    FOREACH stmt IN ARRAY deferred_ddl LOOP
        EXECUTE stmt;
    END LOOP;

    -- Sequences continue after the explicit ids; statistics for the planner. -------------------
    FOR tbl IN
        SELECT t.oid::regclass AS tab, q.oid::regclass AS seq
        FROM pg_class AS q
        JOIN pg_depend AS d ON d.classid = 'pg_class'::regclass AND d.objid = q.oid
                           AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
        JOIN pg_class AS t ON t.oid = d.refobjid
        JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid AND a.attname = 'id'
        WHERE q.relkind = 'S'
          AND t.relnamespace IN ('pipeline'::regnamespace, 'crm'::regnamespace)
        ORDER BY t.oid
    LOOP
        EXECUTE format('SELECT setval(%L, coalesce((SELECT max(id) FROM %s), 0) + 1, false)', tbl.seq, tbl.tab);
        EXECUTE format('ANALYZE %s', tbl.tab);
    END LOOP;
END
$$;

COMMENT ON FUNCTION tandem_sample.generate(integer, integer) IS
'Fills both reference apps with sample data: users and org rows, then records_per_module companies/accounts, contacts, pipeline records/deals each per app, max(10, n/10) products, ~n product attachments, n/2 tasks, n/4 events, n/4 calls and n/2 notes per app. overlap_percent of companies, contacts and products also exist in the other app (same name / email / product code, written differently). Runs once, on empty schemas (SQLSTATE 55000 otherwise). See sql/apps/README.md.';
