import Foundation
import TandemCore
import TandemEngine
import TandemPostgres
import TandemTestSupport
import XCTest

/// Compact mirrors (migration 0012): a mirror holds a 64-bit hash of each
/// field's canonical value, both sides, in the order of its layout.
final class MirrorTests: XCTestCase {
    /// The canonical values of the reference contacts module as the engine of
    /// migration 0011 kept them (jsonb, nulls stripped), for link `l` of
    /// pipeline contact `p` and CRM contact `c`.
    static let legacyContactState: (String, String) = (
        """
        jsonb_strip_nulls(jsonb_build_object('first_name', p.first_name, 'last_name', p.last_name, 'email', p.email,
            'phone', p.phone, 'mobile', p.mobile, 'title', p.title, 'description', p.description,
            'mailing_street', p.mailing_street, 'mailing_city', p.mailing_city, 'mailing_state', p.mailing_state,
            'mailing_zip', p.mailing_zip, 'mailing_country', p.mailing_country,
            'company_id:account_id', (SELECT k.link_id FROM tandem.links k WHERE k.module = 'companies' AND k.pipeline_id = p.company_id::text),
            'owner_id', (SELECT lower(btrim(u.email)) FROM pipeline.users u WHERE u.id = p.owner_id)))
        """,
        """
        jsonb_strip_nulls(jsonb_build_object('first_name', c.first_name, 'last_name', c.last_name, 'email', c.email,
            'phone', c.phone, 'mobile', c.mobile, 'title', c.title, 'description', c.description,
            'mailing_street', c.mailing_street, 'mailing_city', c.mailing_city, 'mailing_state', c.mailing_state,
            'mailing_zip', c.mailing_zip, 'mailing_country', c.mailing_country,
            'company_id:account_id', (SELECT k.link_id FROM tandem.links k WHERE k.module = 'companies' AND k.crm_id = c.account_id::text),
            'owner_id', (SELECT lower(btrim(u.email)) FROM crm.users u WHERE u.id = c.owner_id)))
        """
    )

    /// Fields of contacts mirrors whose hash is not the hash of the app's
    /// value (both sides), and contact links without a mirror.
    static func contactMirrorMismatches(_ db: TestDatabase) throws -> Int {
        let (pipeline, crm) = legacyContactState
        return try db.count("""
            SELECT count(*) FROM tandem.links l
              JOIN tandem.mirrors m ON m.link_id = l.link_id
              JOIN tandem.mirror_layouts ml ON ml.layout_id = m.layout_id
              JOIN pipeline.contacts p ON p.id = l.pipeline_id::bigint
              JOIN crm.contacts c ON c.id = l.crm_id::bigint
             CROSS JOIN LATERAL unnest(ml.fields) WITH ORDINALITY f(name, n)
             WHERE l.module = 'contacts'
               AND (m.hashes[f.n] IS DISTINCT FROM jsonb_hash_extended(\(raw: pipeline) -> f.name, 0)
                    OR m.hashes[f.n + cardinality(ml.fields)] IS DISTINCT FROM jsonb_hash_extended(\(raw: crm) -> f.name, 0))
            """) + db.count("""
            SELECT count(*) FROM tandem.links l WHERE l.module = 'contacts'
               AND NOT EXISTS (SELECT 1 FROM tandem.mirrors m WHERE m.link_id = l.link_id)
            """)
    }

    func testB2_AMirrorIsTheHashOfEveryFieldOfBothSidesInItsLayoutsOrder() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        defer { engine.close() }
        // Every field of every contacts mirror, both sides, against the apps:
        // after the initial sync (created and matched pairs), and after a
        // pass that wrote each side and one that wrote neither (the same
        // edit on both sides), whose mirrors come from the merge's hashes.
        let mismatches = { try Self.contactMirrorMismatches(db) }
        XCTAssertEqual(try mismatches(), 0)
        let crmOfOne = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "1"))
        let crmOfTwo = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "2"))
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 5555 0001', owner_id = (SELECT u.id FROM pipeline.users u WHERE u.id <> pipeline.contacts.owner_id ORDER BY u.id LIMIT 1) WHERE id = 1")
        try db.execute("UPDATE crm.contacts SET title = 'Chief of Staff 日本' WHERE id = \(crmOfTwo)::bigint")
        try db.execute("UPDATE pipeline.contacts SET mobile = '+81 90 0000 0003' WHERE id = 3")
        try db.execute("UPDATE crm.contacts SET mobile = '+81 90 0000 0003' WHERE id = (SELECT crm_id::bigint FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '3')")
        let summary = try engine.passUntilQuiet()
        XCTAssertEqual(summary.updatedInCRM, 1)
        XCTAssertEqual(summary.updatedInPipeline, 1)
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmOfOne)::bigint"), "+81 3 5555 0001")
        XCTAssertEqual(try mismatches(), 0)
        // Passes that write one side only read nothing of the other side's table.
        try db.execute("UPDATE pipeline.contacts SET title = 'Head of Growth' WHERE id = 4")
        XCTAssertEqual(try engine.pass().updatedInCRM, 1)
        XCTAssertEqual(try mismatches(), 0)
        try db.execute("UPDATE crm.contacts SET mailing_city = 'Ōsaka' WHERE id = \(crmOfTwo)::bigint")
        XCTAssertEqual(try engine.pass().updatedInPipeline, 1)
        XCTAssertEqual(try mismatches(), 0)
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.links WHERE module = 'contacts'"), 0)
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.mirror_layouts ml JOIN tandem.field_mappings fm USING (integration_id, module)
             WHERE ml.module = 'contacts' AND fm.field = ANY (ml.fields)
            """), try db.count("SELECT count(*) FROM tandem.field_mappings WHERE module = 'contacts'"), "the layout lists every mapped field")
        // The values themselves are kept nowhere in Tandem's schema.
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM information_schema.columns WHERE table_schema = 'tandem' AND table_name = 'mirrors' AND data_type = 'jsonb'
            """), 0)
        let width = Double(try db.scalar("SELECT avg(pg_column_size(m.*)) FROM tandem.mirrors m") ?? "") ?? .infinity
        XCTAssertLessThan(width, 400, "a mirror of 14 fields on both sides is an array of 28 hashes")
    }

    /// A copy is created, linked and mirrored by one statement, and its
    /// mirror holds the copy as the app stored it: here the CRM app's own
    /// trigger capitalizes a new contact's title, and the next edit of the
    /// record brings back nothing of it. When a record of the batch fails,
    /// the rest are created record by record and still linked and mirrored.
    func testB2_ACopyIsMirroredAsTheAppStoredIt() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        defer { engine.close() }
        try db.execute("CREATE FUNCTION crm.shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END $$")
        try db.execute("CREATE TRIGGER shout BEFORE INSERT ON crm.contacts FOR EACH ROW EXECUTE FUNCTION crm.shout()")
        try db.execute("INSERT INTO pipeline.contacts (last_name, email, title, owner_id) VALUES ('Copy', 'copy@example.org', 'Head of Sales', 1)")
        XCTAssertEqual(try engine.passUntilQuiet().createdInCRM, 1)
        let id = try XCTUnwrap(try db.scalar("SELECT id FROM pipeline.contacts WHERE email = 'copy@example.org'"))
        let copy = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: id))
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(copy)::bigint"), "HEAD OF SALES")
        XCTAssertEqual(try Self.contactMirrorMismatches(db), 0)
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0099' WHERE id = \(id)::bigint")
        let edit = try engine.passUntilQuiet()
        XCTAssertEqual(edit.updatedInCRM, 1)
        XCTAssertEqual(edit.updatedInPipeline, 0, "the app's own capitals are not an edit to bring back")
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = \(id)::bigint"), "Head of Sales")

        // One record of the batch fails: the others are created one by one,
        // then linked and mirrored all the same.
        try db.execute("ALTER TABLE crm.contacts ADD CONSTRAINT no_bad_phone CHECK (phone IS DISTINCT FROM 'bad phone')")
        try db.execute("""
            INSERT INTO pipeline.contacts (last_name, email, phone, title, owner_id)
            VALUES ('Bad', 'bad@example.org', 'bad phone', 'x', 1), ('Good', 'good@example.org', 'fine', 'Buyer', 1),
                   ('Fine', 'fine@example.org', 'fine', 'Seller', 1)
            """)
        let batch = try engine.passUntilQuiet()
        XCTAssertEqual(batch.createdInCRM, 2)
        XCTAssertEqual(batch.errors, 1)
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE email IN ('good@example.org', 'fine@example.org') AND title IN ('BUYER', 'SELLER')"), 2)
        XCTAssertEqual(try Self.contactMirrorMismatches(db), 0)
        try db.execute("UPDATE pipeline.contacts SET phone = 'finer' WHERE email IN ('good@example.org', 'fine@example.org')")
        let after = try engine.passUntilQuiet()
        XCTAssertEqual(after.updatedInCRM, 2)
        XCTAssertEqual(after.updatedInPipeline, 0)
    }

    /// A pass that writes one side mirrors the records as the update returned
    /// them (the app's BEFORE UPDATE trigger included), in the same
    /// statement; if a record's data fails it, the others are written one
    /// by one and mirrored all the same.
    func testB2_AnUpdateIsMirroredAsTheAppStoredIt() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        defer { engine.close() }
        try db.execute("CREATE FUNCTION crm.shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END $$")
        try db.execute("CREATE TRIGGER shout BEFORE UPDATE ON crm.contacts FOR EACH ROW EXECUTE FUNCTION crm.shout()")
        // An app column whose name is the statement's alias for the table.
        try db.execute("ALTER TABLE crm.contacts ADD COLUMN t integer")
        let crm = try ["1", "2", "3", "4", "5"].map { try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: $0)) }
        try db.execute("UPDATE pipeline.contacts SET title = 'Head of Sales' WHERE id IN (1, 2)")
        let pass = try engine.passUntilQuiet()
        XCTAssertEqual(pass.updatedInCRM, 2, "\(pass)")
        XCTAssertEqual(try db.scalar("SELECT title FROM crm.contacts WHERE id = \(crm[0])::bigint"), "HEAD OF SALES")
        XCTAssertEqual(try Self.contactMirrorMismatches(db), 0)
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0098' WHERE id = 1")
        let edit = try engine.passUntilQuiet()
        XCTAssertEqual(edit.updatedInCRM, 1, "\(edit)")
        XCTAssertEqual(edit.updatedInPipeline, 0, "the app's own capitals are not an edit to bring back")
        XCTAssertEqual(try db.scalar("SELECT title FROM pipeline.contacts WHERE id = 1"), "Head of Sales")

        // One record of the batch fails: the others are written one by one,
        // then mirrored as stored; only the failed one's mirror is behind.
        try db.execute("ALTER TABLE crm.contacts ADD CONSTRAINT no_bad_phone CHECK (phone IS DISTINCT FROM 'bad phone')")
        try db.execute("UPDATE pipeline.contacts SET phone = 'bad phone' WHERE id = 3")
        try db.execute("UPDATE pipeline.contacts SET title = CASE id WHEN 4 THEN 'Buyer' ELSE 'Seller' END WHERE id IN (4, 5)")
        let batch = try engine.passUntilQuiet()
        XCTAssertEqual(batch.updatedInCRM, 2, "\(batch)")
        XCTAssertEqual(batch.errors, 1, "\(batch)")
        XCTAssertEqual(try db.count("SELECT count(*) FROM crm.contacts WHERE id IN (\(raw: crm[3]), \(raw: crm[4])) AND title IN ('BUYER', 'SELLER')"), 2)
        XCTAssertEqual(try Self.contactMirrorMismatches(db), 1, "the failed record's change waits in the error list")
        try db.execute("UPDATE pipeline.contacts SET phone = 'finer' WHERE id IN (4, 5)")
        let after = try engine.passUntilQuiet()
        XCTAssertEqual(after.updatedInCRM, 2, "\(after)")
        XCTAssertEqual(after.updatedInPipeline, 0, "\(after)")
    }

    /// A pass rewrites the mirror of every record it writes; its pages keep
    /// a fifth free for that (fillfactor 80, migration 0001, kept by 0012),
    /// so the new version stays on its page and adds no index entry (a HOT
    /// update). Rewriting 100,000 of 340,000 mirrors as a pass does (ON CONFLICT
    /// DO UPDATE, freshly packed table, three rounds) took 1.3-1.9 s with full
    /// pages against 0.65-1.2 s with fillfactor 80.
    func testB2_AMirrorRewrittenByAPassStaysOnItsPage() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        defer { engine.close() }
        let page: (String) throws -> String? = { link in
            try db.scalar("SELECT (ctid::text::point)[0] FROM tandem.mirrors WHERE link_id = \(link)::bigint")
        }
        XCTAssertGreaterThan(try db.count("SELECT count(*) FROM tandem.mirrors WHERE (ctid::text::point)[0] > 0"), 0,
                             "the initial sync filled the first page of mirrors")
        let first = try db.execute("""
            SELECT l.link_id, l.pipeline_id FROM tandem.mirrors m JOIN tandem.links l USING (link_id)
             WHERE l.module = 'companies' AND (m.ctid::text::point)[0] = 0 ORDER BY l.link_id LIMIT 3
            """).rows
        XCTAssertEqual(first.count, 3)
        let before = try first.map { try page($0[0] ?? "") }
        try db.execute("UPDATE pipeline.companies SET phone = 'HOT ' || id WHERE id IN (\(raw: first.map { $0[1] ?? "0" }.joined(separator: ", ")))")
        XCTAssertEqual(try engine.passUntilQuiet().updatedInCRM, 3)
        XCTAssertEqual(try first.map { try page($0[0] ?? "") }, before)
        XCTAssertEqual(before, ["0", "0", "0"])
    }

    /// A database whose mirrors hold values (before 0012) is converted when
    /// the library migrates it, and passes read the converted mirrors through
    /// their layout (another order than the one the engine binds): an edit
    /// of one field travels alone, and no conflict is invented.
    func testMigration0012ConvertsMirrorsThatHoldValues() throws {
        let db = try TestDatabase()
        let engine = try db.syncedEngine()
        engine.close()
        let (pipeline, crm) = Self.legacyContactState
        // Back to the schema of 0011, with the values the engine kept then.
        try db.sql.executeScript("""
            DELETE FROM tandem.migrations WHERE version = 12;
            DROP TABLE tandem.mirror_layouts;
            ALTER TABLE tandem.mirrors DROP COLUMN layout_id, DROP COLUMN hashes,
                ADD COLUMN pipeline_state jsonb, ADD COLUMN crm_state jsonb;
            UPDATE tandem.mirrors m SET pipeline_state = \(pipeline), crm_state = \(crm)
              FROM tandem.links l, pipeline.contacts p, crm.contacts c
             WHERE l.link_id = m.link_id AND l.module = 'contacts' AND p.id = l.pipeline_id::bigint AND c.id = l.crm_id::bigint;
            UPDATE tandem.mirrors SET pipeline_state = '{"phone": "kept"}', crm_state = '{}' WHERE pipeline_state IS NULL;
            ALTER TABLE tandem.mirrors ALTER COLUMN pipeline_state SET NOT NULL, ALTER COLUMN crm_state SET NOT NULL;
            INSERT INTO tandem.mirrors (link_id, pipeline_state, crm_state) VALUES (-1, '{}', '{}');
            """)
        XCTAssertEqual(try db.count("""
            SELECT count(*) FROM tandem.field_mappings WHERE module = 'contacts' AND field IN ('first_name', 'last_name', 'email',
              'phone', 'mobile', 'title', 'description', 'mailing_street', 'mailing_city', 'mailing_state', 'mailing_zip',
              'mailing_country', 'company_id:account_id', 'owner_id')
            """), 14)
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.field_mappings WHERE module = 'contacts'"), 14,
                       "the test's values name exactly the mapped fields")

        let upgraded = try db.engine()   // install() migrates
        defer { upgraded.close() }
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.mirrors WHERE link_id = -1"), 0, "a mirror without a link goes")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.mirrors m LEFT JOIN tandem.links l USING (link_id) WHERE l.link_id IS NULL"), 0)
        XCTAssertEqual(try db.scalar("""
            SELECT m.hashes[array_position(ml.fields, 'phone')] = jsonb_hash_extended('"kept"', 0)
                   AND m.hashes[array_position(ml.fields, 'phone') + cardinality(ml.fields)] IS NULL
              FROM tandem.mirrors m JOIN tandem.mirror_layouts ml USING (layout_id) JOIN tandem.links l USING (link_id)
             WHERE l.module = 'companies' LIMIT 1
            """), "t", "each side's value hashed at its field's place; no value is NULL")

        try upgraded.attach("default")
        let conflicts = try db.count("SELECT count(*) FROM tandem.conflict_decisions")
        let crmID = try XCTUnwrap(try db.linked("contacts", from: .pipeline, id: "3"))
        let before = try XCTUnwrap(try db.scalar("SELECT (to_jsonb(c) - 'phone' - 'modified_time')::text FROM crm.contacts c WHERE id = \(crmID)::bigint"))
        try db.execute("UPDATE pipeline.contacts SET phone = '+81 3 0000 0003' WHERE id = 3")
        let summary = try upgraded.passUntilQuiet()
        XCTAssertEqual(summary.updatedInCRM, 1, "\(summary)")
        XCTAssertEqual(summary.updatedInPipeline, 0, "\(summary)")
        XCTAssertEqual(try db.scalar("SELECT phone FROM crm.contacts WHERE id = \(crmID)::bigint"), "+81 3 0000 0003")
        XCTAssertEqual(try db.scalar("SELECT (to_jsonb(c) - 'phone' - 'modified_time')::text FROM crm.contacts c WHERE id = \(crmID)::bigint"), before,
                       "no other field was written")
        XCTAssertEqual(try db.count("SELECT count(*) FROM tandem.conflict_decisions"), conflicts, "no conflict invented")
        XCTAssertEqual(try db.count("SELECT count(DISTINCT layout_id) FROM tandem.mirrors m JOIN tandem.links l USING (link_id) WHERE l.module = 'contacts'"), 2,
                       "the written mirror took the engine's layout; the others kept the converted one")
    }
}
