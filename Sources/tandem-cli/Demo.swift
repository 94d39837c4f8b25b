import Foundation
import TandemCore
import TandemEngine
import TandemPostgres

/// `tandem demo`: the reference apps with sample data, the first tab set up
/// with the default mapping, the initial sync with progress, live two-way
/// propagation with measured latency, a conflict decided by the policy, and
/// the reporting views.
struct DemoStory {
    let conninfo: String
    let follow: Bool
    var appsDirectory = "sql/apps"
    var recordsPerModule = 3000

    init(conninfo: String, follow: Bool) {
        self.conninfo = conninfo
        self.follow = follow
        if let value = ProcessInfo.processInfo.environment["TANDEM_DEMO_RECORDS"], let number = Int(value), number > 0 {
            recordsPerModule = number
        }
        if let value = ProcessInfo.processInfo.environment["TANDEM_APPS_DIR"], !value.isEmpty { appsDirectory = value }
    }

    static let config = """
        {
          "integration": "default",
          "conflict_policy": "latest",
          "initial_sync_chunk": 1000,
          "pipeline": {"schema": "pipeline", "acting_user": "admin@example.com"},
          "crm": {"schema": "crm", "acting_user": "admin@example.com"},
          "tabs": {
            "contacts_companies": {"views": {"companies": "all_accounts", "contacts": "contacts_with_email"}},
            "pipelines_products": {"views": {"products": "all_products", "deals": "open_deals"}},
            "activities": {},
            "notes": {}
          }
        }
        """

    static let tabs = ["contacts_companies", "pipelines_products", "activities", "notes"]

    func run() throws {
        let sql = try Connection(conninfo: conninfo)
        heading("1. The two apps")
        if try sql.execute("SELECT to_regnamespace('pipeline') IS NOT NULL AND to_regnamespace('crm') IS NOT NULL").scalar == "t" {
            say("The reference apps are already installed in this database; using them as they are.")
        } else {
            for file in ["pipeline", "crm", "sample"] {
                let path = "\(appsDirectory)/\(file).sql"
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw TandemError(.misuse, "cannot read \(path): run the demo from the repository root or set TANDEM_APPS_DIR")
                }
                try sql.executeScript(text)
            }
            let started = Date()
            try sql.execute("SELECT tandem_sample.generate(\(recordsPerModule), 30)")
            say("Installed sql/apps/pipeline.sql (Bigin-like) and sql/apps/crm.sql (Zoho CRM-like) and made \(recordsPerModule) sample records per module in each app, 30% of them on both sides under slightly different spelling (\(seconds(since: started))).")
        }
        try table(sql, """
            SELECT 'pipeline app' AS app, (SELECT count(*) FROM pipeline.companies) AS companies_or_accounts,
                   (SELECT count(*) FROM pipeline.contacts) AS contacts, (SELECT edition FROM pipeline.org) AS edition
            UNION ALL
            SELECT 'CRM app', (SELECT count(*) FROM crm.accounts), (SELECT count(*) FROM crm.contacts), (SELECT edition FROM crm.org)
            """)

        heading("2. Configure the four tabs (default mappings) and activate them in order")
        let engine = try Engine(conninfo: conninfo)
        try engine.install()
        say("Configuration:\n\(DemoStory.config)")
        try engine.configure(DemoStory.config)
        say("Validated against the live catalog: tables, columns, types, mandatory fields and every stage of both apps (R8); admin@example.com is Administrator + CEO in both apps (R5); the pipeline app's edition is allowed (R6).")
        do {
            try engine.activate("notes")
        } catch let error as TandemError {
            say("Activating notes first is refused (R2): \(error.message)")
        }
        var sizes: [String: Int] = [:]
        for module in engine.integration?.modules ?? [] {
            for side in Side.allCases {
                let source = side == .crm ? (module.crm.view ?? module.crm.table) : module.pipeline.table
                sizes["\(module.name)/\(side.rawValue)"] = Int(try sql.execute("SELECT count(*) FROM \(qualified: source.schema, source.name)").scalar ?? "0") ?? 0
            }
        }
        engine.eventHandler = { event in
            guard let object = DemoStory.object(event) else { return }
            switch object["type"] as? String {
            case "initial_sync_progress":
                let key = "\(object["module"] ?? "")/\(object["side"] ?? "")"
                let read = (object["read"] as? NSNumber)?.intValue ?? 0
                // Records matched or copied from the other side are not read again.
                let total = object["done"] as? Bool == true ? max(read, 1) : max(sizes[key] ?? read, read, 1)
                let bar = String(repeating: "#", count: min(30, 30 * read / total)).padding(toLength: 30, withPad: ".", startingAt: 0)
                print("   \(key.padding(toLength: 22, withPad: " ", startingAt: 0)) [\(bar)] \(read)")
            case "initial_sync_complete":
                print("   event: \(event)")
            default: break
            }
            fflush(nil)
        }
        for tab in DemoStory.tabs {
            let activated = Date()
            try engine.activate(tab)
            try engine.passUntilQuiet()
            say("\(tab): initial sync complete in \(seconds(since: activated)).\n")
        }
        say("Records on both sides were matched, not copied (B3: contacts by email, companies by name, products by code, ignoring case and spaces); the rest were copied; all are linked. CRM contacts without an email and closed CRM deals are outside the selected views (R7), so the activities and notes attached to them wait for their parent (R11).")
        try table(sql, "SELECT tab, module, origin, count(*) AS links FROM tandem.linked_records GROUP BY 1, 2, 3 ORDER BY min(link_id), 3")
        try table(sql, "SELECT tab, state, linked_records, waiting_records, open_errors FROM tandem.tab_status ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab)")

        heading("3. Live two-way propagation in every tab (LISTEN/NOTIFY, the engine following in the background)")
        engine.eventHandler = nil
        let follower = Follower(engine)
        follower.start()
        var latencies: [Double] = []
        let linkedDeal = try sql.execute("SELECT pipeline_id FROM tandem.links WHERE module = 'deals' AND origin = 'pipeline' ORDER BY link_id LIMIT 1").scalar ?? "1"
        let crmDeal = try sql.execute("SELECT crm_id FROM tandem.links WHERE module = 'deals' AND pipeline_id = \(linkedDeal)").scalar ?? "1"
        let crmAccount = try sql.execute("SELECT crm_id FROM tandem.links WHERE module = 'companies' ORDER BY link_id LIMIT 1").scalar ?? "1"
        let pipelineCompany = try sql.execute("SELECT pipeline_id FROM tandem.links WHERE module = 'companies' AND crm_id = \(crmAccount)").scalar ?? "1"
        let stages = ["Value Proposition": "Needs Identified", "Negotiation/Review": "Negotiation/Review", "Id. Decision Makers": "Needs Identified", "Qualification": "Qualification", "Proposal/Price Quote": "Proposal/Price Quote"]
        let stageNames = Array(stages.keys).sorted()
        for round in 0..<5 {
            let tag = "\(round)-\(Int.random(in: 1000...9999))"
            let stage = stageNames[round % stageNames.count]
            let edits: [(String, SQL, SQL, String)] = [
                ("Contacts & Companies, pipeline app: a contact's phone",
                 "UPDATE pipeline.contacts SET phone = \("+1 555 \(tag)") WHERE id = 1",
                 "SELECT c.phone FROM crm.contacts c JOIN tandem.links l ON l.module = 'contacts' AND l.crm_id = c.id::text WHERE l.pipeline_id = '1'",
                 "+1 555 \(tag)"),
                ("Contacts & Companies, CRM app: an account's website",
                 "UPDATE crm.accounts SET website = \("https://example-\(tag).com") WHERE id = \(crmAccount)::bigint",
                 "SELECT website FROM pipeline.companies WHERE id = \(pipelineCompany)::bigint",
                 "https://example-\(tag).com"),
                ("Pipelines & Products, CRM app: a deal's stage",
                 "UPDATE crm.deals SET stage = \(stage), description = \(tag) WHERE id = \(crmDeal)::bigint",
                 "SELECT stage FROM pipeline.pipeline_records WHERE id = \(linkedDeal)::bigint AND description = \(tag)",
                 stages[stage]!),
                ("Pipelines & Products, pipeline app: a new product",
                 "INSERT INTO pipeline.products (product_name, product_code, unit_price, owner_id) VALUES ('Demo product', \("DEMO-\(tag)"), 42, 1)",
                 "SELECT product_code FROM crm.products WHERE product_code = \("DEMO-\(tag)")",
                 "DEMO-\(tag)"),
                ("Activities, pipeline app: a task with a reminder",
                 "INSERT INTO pipeline.tasks (subject, contact_id, owner_id, reminder_at) VALUES (\("Call back \(tag)"), 1, 1, now() + interval '1 day')",
                 "SELECT subject || CASE WHEN reminder_at IS NULL THEN ' (no reminder: R12)' ELSE ' (reminder copied!)' END FROM crm.tasks WHERE subject = \("Call back \(tag)")",
                 "Call back \(tag) (no reminder: R12)"),
                ("Notes, CRM app: a note on an account",
                 "INSERT INTO crm.notes (note_title, note_content, parent_module, parent_id, owner_id) VALUES ('Demo', \("Note \(tag)"), 'accounts', \(crmAccount)::bigint, 1)",
                 "SELECT note_content FROM pipeline.notes WHERE company_id = \(pipelineCompany)::bigint AND note_content = \("Note \(tag)")",
                 "Note \(tag)"),
            ]
            for (label, edit, check, expected) in edits {
                let started = DispatchTime.now()
                try sql.execute(edit)
                var seen = false
                while DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds < 5_000_000_000 {
                    if try sql.execute(check).scalar == expected { seen = true; break }
                }
                let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000
                if round == 0 {
                    say("   \(label.padding(toLength: 54, withPad: " ", startingAt: 0)) -> \(seen ? "\"\(expected)\" after \(String(format: "%.1f", milliseconds)) ms" : "NOT visible after 5 s")")
                }
                if seen { latencies.append(milliseconds) }
            }
        }
        latencies.sort()
        if !latencies.isEmpty {
            say("Commit-to-visible latency over \(latencies.count) edits (measured by polling the other app from this process): p50 \(String(format: "%.1f", latencies[latencies.count / 2])) ms, max \(String(format: "%.1f", latencies.last!)) ms.")
        }

        heading("4. A conflict decided by the policy (latest)")
        try follower.stop()
        say("The engine is paused. In the CRM app someone edits a contact's description and mobile; a little later, in the pipeline app, someone edits the same contact's mobile and title.")
        let crmID = try sql.execute("SELECT crm_id FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '5'").scalar ?? "0"
        try sql.execute("UPDATE crm.contacts SET description = 'Edited in the CRM app', mobile = '+44 20 7946 0001 (CRM edit)' WHERE id = \(crmID)::bigint")
        usleep(50_000)
        try sql.execute("UPDATE pipeline.contacts SET mobile = '+44 20 7946 0002 (pipeline edit)', title = 'Edited in the pipeline app' WHERE id = 5")
        try engine.passUntilQuiet()
        try table(sql, """
            SELECT 'pipeline app' AS app, mobile, title, left(description, 30) AS description FROM pipeline.contacts WHERE id = 5
            UNION ALL SELECT 'CRM app', mobile, title, left(description, 30) FROM crm.contacts WHERE id = \(crmID)::bigint
            """)
        say("mobile changed on both sides: the policy `latest` compares the records' modified times and the pipeline app's later edit won; title and description changed on one side each and both were kept (B2).")
        try table(sql, "SELECT module, field, pipeline_value, crm_value, winner, reason FROM tandem.conflicts WHERE link_id = (SELECT link_id FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '5') ORDER BY decided_at DESC LIMIT 1")

        heading("5. The reporting views (psql: SELECT * FROM tandem.<view>)")
        say("tandem.tab_status")
        try table(sql, "SELECT integration, tab, state, initial_sync_complete, linked_records, pending_changes, waiting_records, open_errors, conflicts, last_pass_at FROM tandem.tab_status ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab)")
        say("tandem.run_history (latest 5)")
        try table(sql, "SELECT run_id, kind, duration_ms, changes_read, matched, created_in_pipeline, created_in_crm, updated_in_pipeline, updated_in_crm, conflicts, errors FROM tandem.run_history ORDER BY run_id DESC LIMIT 5")
        say("tandem.pending_changes (a dry run of the next pass), after one more edit in the CRM app")
        try sql.execute("UPDATE crm.contacts SET phone = '+1 555 0199' WHERE id = 4")
        try table(sql, "SELECT module, side, record_id, change, next_action FROM tandem.pending_changes")
        try engine.passUntilQuiet()
        say("tandem.record_errors: \(try sql.execute("SELECT count(*) FROM tandem.record_errors").scalar ?? "0") open; tandem.linked_records by status:")
        try table(sql, "SELECT tab, module, status, count(*) FROM tandem.linked_records GROUP BY 1, 2, 3 ORDER BY min(link_id)")

        try lifecycle(sql, engine)

        if follow {
            heading("Following changes (Ctrl-C to stop); edit either app with psql and watch")
            say("psql '\(DemoStory.displayable(conninfo))'")
            engine.eventHandler = { print($0); fflush(nil) }
            demoEngine = engine
            signal(SIGINT) { _ in demoEngine?.requestStop() }
            signal(SIGTERM) { _ in demoEngine?.requestStop() }
            try engine.run()
        }
        engine.close()
        heading("Done")
    }

    /// Deactivate, edit on both sides, reactivate with a policy (R15, R16);
    /// change a view and re-scan (R14); remove the integration (R17).
    func lifecycle(_ sql: Connection, _ engine: Engine) throws {
        heading("6. Pause a tab, edit both apps, bring it back with a policy (R15, R16)")
        let task = try sql.execute("SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'tasks' ORDER BY link_id LIMIT 1").rows.first ?? []
        guard task.count == 2, let pipelineTask = task[0], let crmTask = task[1] else {
            say("(no linked task in the sample: skipped)")
            return
        }
        try engine.deactivate("activities")
        say("`tandem deactivate activities`: its capture triggers are dropped, links and mirrors kept. Meanwhile, the same task is edited in the CRM app and then in the pipeline app, and a task is added on each side:")
        try sql.execute("UPDATE crm.tasks SET subject = 'Renewal call (CRM)', priority = 'High' WHERE id = \(crmTask)::bigint")
        try sql.execute("UPDATE pipeline.tasks SET subject = 'Renewal call (pipeline)', status = 'In Progress' WHERE id = \(pipelineTask)::bigint")
        try sql.execute("INSERT INTO pipeline.tasks (subject, contact_id, owner_id) VALUES ('Added in the pipeline app while paused', 1, 1)")
        let crmContact = try sql.execute("SELECT crm_id FROM tandem.links WHERE module = 'contacts' AND pipeline_id = '1'").scalar ?? "1"
        try sql.execute("INSERT INTO crm.tasks (subject, who_id, owner_id) VALUES ('Added in the CRM app while paused', \(crmContact)::bigint, 1)")
        try engine.passUntilQuiet()
        let compare: SQL = """
            SELECT 'pipeline app' AS app, subject, status, priority FROM pipeline.tasks WHERE id = \(pipelineTask)::bigint
            UNION ALL SELECT 'CRM app', subject, status, priority FROM crm.tasks WHERE id = \(crmTask)::bigint
            """
        try table(sql, compare)
        say("Nothing synced while inactive. `tandem reactivate activities --policy crm_wins`:")
        try engine.reactivate("activities", policy: .crmWins)
        try engine.passUntilQuiet()
        try table(sql, compare)
        say("subject changed on both sides: crm_wins decided it in both apps; status and priority changed on one side each and synced. The added tasks now exist once on each side:")
        try table(sql, """
            SELECT subject, (SELECT count(*) FROM pipeline.tasks p WHERE p.subject = s.subject) AS in_pipeline_app,
                   (SELECT count(*) FROM crm.tasks c WHERE c.subject = s.subject) AS in_crm_app
              FROM (VALUES ('Added in the pipeline app while paused'), ('Added in the CRM app while paused')) s(subject)
            """)
        try table(sql, "SELECT field, pipeline_value, crm_value, winner, policy, reason FROM tandem.conflicts WHERE policy = 'crm_wins' ORDER BY decided_at DESC LIMIT 1")

        heading("7. Change a CRM view and re-scan (R14)")
        let outside: SQL = "SELECT count(*) FROM crm.contacts c WHERE NOT EXISTS (SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.crm_id = c.id::text)"
        say("CRM contacts not in the pipeline app (outside the view contacts_with_email): \(try sql.execute(outside).scalar ?? "?")")
        let widened = DemoStory.config.replacingOccurrences(of: "\"contacts_with_email\"", with: "\"all_contacts\"")
        let summary = try engine.editSync("contacts_companies", configuration: widened)
        say("`tandem edit contacts_companies --config` with the view all_contacts: views changed \(summary.viewsChanged); the re-scan runs in chunks like an initial sync.")
        try engine.passUntilQuiet()
        say("CRM contacts not in the pipeline app now: \(try sql.execute(outside).scalar ?? "?"); records synced from the old view kept their links.")
        try table(sql, "SELECT type, payload->'modules'->'contacts' AS contacts FROM tandem.event_history WHERE type = 'edit_sync_complete' ORDER BY event_id DESC LIMIT 1")

        if follow {
            say("(--follow: the integration is kept, so the removal of step 8 is skipped)")
            return
        }
        heading("8. Remove the integration (R17)")
        let fingerprint: SQL = """
            SELECT (SELECT count(*) FROM pipeline.contacts) + (SELECT count(*) FROM pipeline.companies) + (SELECT count(*) FROM pipeline.tasks) AS pipeline_rows,
                   (SELECT count(*) FROM crm.contacts) + (SELECT count(*) FROM crm.accounts) + (SELECT count(*) FROM crm.tasks) AS crm_rows,
                   (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname IN ('pipeline', 'crm') AND t.tgname LIKE '%tandem%') AS tandem_triggers,
                   (SELECT count(*) FROM pg_indexes WHERE schemaname IN ('pipeline', 'crm') AND indexname LIKE 'tandem%') AS tandem_indexes
            """
        say("Before:")
        try table(sql, fingerprint)
        try engine.remove(purge: false)
        say("`tandem remove`: after:")
        try table(sql, fingerprint)
        say("Every app row is still there, no trigger or index of Tandem's is left on the app tables, and the history stays for reporting:")
        try table(sql, "SELECT tab, state, linked_records, conflicts FROM tandem.tab_status ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab)")
    }

    func heading(_ text: String) { print("\n== \(text)\n"); fflush(nil) }

    func say(_ text: String) { print(text); fflush(nil) }

    func seconds(since start: Date) -> String { String(format: "%.1f s", Date().timeIntervalSince(start)) }

    /// Prints a query's result as a table.
    func table(_ connection: Connection, _ statement: SQL) throws {
        let result = try connection.execute(statement)
        let cells = result.rows.map { $0.map { value -> String in
            let text = (value ?? "∅").replacingOccurrences(of: "\n", with: " ")
            return text.count > 60 ? String(text.prefix(57)) + "..." : text
        } }
        let widths = result.columns.indices.map { column in
            max(result.columns[column].count, cells.map { $0[column].count }.max() ?? 0)
        }
        let line = { (values: [String]) -> String in
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " | ")
        }
        print("   " + line(result.columns))
        print("   " + widths.map { String(repeating: "-", count: $0) }.joined(separator: "-+-"))
        for row in cells { print("   " + line(row)) }
        print("   (\(cells.count) row\(cells.count == 1 ? "" : "s"))\n")
        fflush(nil)
    }

    static func object(_ json: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
    }

    /// The conninfo without a password, for printing.
    static func displayable(_ conninfo: String) -> String {
        conninfo.split(separator: " ").filter { !$0.lowercased().hasPrefix("password") }.joined(separator: " ")
    }
}

nonisolated(unsafe) var demoEngine: Engine?

/// Runs `engine.run()` on a thread of its own until stopped.
final class Follower: @unchecked Sendable {
    let engine: Engine
    let finished = DispatchSemaphore(value: 0)
    var failure: Error?

    init(_ engine: Engine) { self.engine = engine }

    func start() {
        Thread.detachNewThread { [self] in
            do { try engine.run() } catch { failure = error }
            finished.signal()
        }
        usleep(100_000)
    }

    func stop() throws {
        engine.requestStop()
        finished.wait()
        if let failure { throw failure }
    }
}
