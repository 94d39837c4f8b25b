import Foundation
import TandemCore
import TandemEngine
import TandemPostgres

/// `tandem demo`: the reference apps with sample data, the four tabs set up
/// with the default mappings, the initial syncs with progress, live two-way
/// propagation with measured latency, a conflict decided by the policy, the
/// reporting views and the lifecycle (deactivate, reactivate, edit, remove).
/// One screen per step: summaries (counts by action) rather than whole
/// tables, at most ten rows where rows help, progress in place on a terminal.
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
                    throw Failure(status: ExitStatus.noInput, message: "cannot read \(path): run the demo from the repository root or set TANDEM_APPS_DIR")
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
        say("Configuration: acting user admin@example.com on both sides, conflict_policy latest, the four tabs with the default mappings; CRM views: companies all_accounts, contacts contacts_with_email, products all_products, deals open_deals; activities and notes are mapped by the system (R9).")
        try engine.configure(DemoStory.config)
        say("Validated against the live catalog: tables, columns, types, mandatory fields and every stage of both apps (R8); admin@example.com is Administrator + CEO in both apps (R5); the pipeline app's edition is allowed (R6).")
        do {
            try engine.activate("notes")
        } catch let error as TandemError {
            say("Activating notes first is refused (R2): \(error.message)")
        }
        let progress = DemoProgress(moduleOrder: engine.integration?.modules.map(\.name) ?? [])
        engine.eventHandler = { progress.event($0) }
        say("")
        for tab in DemoStory.tabs {
            try engine.activate(tab)
            while true {
                let summary = try engine.pass()
                if summary.initialChunk { progress.show(try engine.jobProgress()) }
                if !summary.didWork { break }
            }
            progress.finish()
        }
        engine.eventHandler = nil
        say("")
        say("Records on both sides were matched, not copied (B3: contacts by email, companies by name, products by code, ignoring case and spaces); the rest were copied. CRM contacts without an email and closed CRM deals are outside the selected views (R7), so the activities and notes attached to them wait for their parent (R11).")
        try table(sql, "SELECT tab, state, linked_records AS linked, waiting_records AS waiting, open_errors AS errors, conflicts FROM tandem.tab_status ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab)")

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

        heading("5. The reporting views (psql: SELECT * FROM tandem.<view>; CLI: tandem status, tandem report NAME)")
        say("`tandem status` (tandem.tab_status, and who syncs):")
        for line in StatusView(try JSONValue.parse(try engine.status())).lines where !line.isEmpty { say("   " + line) }
        say("tandem.run_history, passes by kind:")
        try table(sql, """
            SELECT kind, count(*) AS passes, sum(changes_read) AS read, sum(matched) AS matched,
                   sum(created_in_pipeline + created_in_crm) AS created, sum(updated_in_pipeline + updated_in_crm) AS updated,
                   sum(conflicts) AS conflicts, round(avg(duration_ms)) AS avg_ms
              FROM tandem.run_history GROUP BY kind ORDER BY min(run_id)
            """)
        try sql.execute("UPDATE crm.contacts SET phone = '+1 555 0199' WHERE id = 4")
        say("tandem.pending_changes (what the next pass will do), after one more edit in the CRM app, counted by action:")
        try table(sql, """
            SELECT tab, module, change, count(*) AS records,
                   min(CASE WHEN change = 'waiting' THEN next_action ELSE split_part(next_action, ' record ', 1) END) AS next_action
              FROM tandem.pending_changes GROUP BY 1, 2, 3
             ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab), 4 DESC
            """)
        try engine.passUntilQuiet()
        say("tandem.record_errors: \(try sql.execute("SELECT count(*) FROM tandem.record_errors").scalar ?? "0") open. tandem.linked_records by status:")
        try table(sql, "SELECT tab, status, count(*) AS records FROM tandem.linked_records GROUP BY 1, 2 ORDER BY array_position(ARRAY['contacts_companies','pipelines_products','activities','notes'], tab), 3 DESC")

        try lifecycle(sql, engine)

        if follow {
            heading("Following changes (Ctrl-C to stop); edit either app with psql and watch")
            say("psql '\(DemoStory.displayable(conninfo))'")
            engine.eventHandler = { print($0); fflush(nil) }
            Interrupt.shared.install { engine.requestStop() }
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
        say("`tandem edit contacts_companies --config` with the view all_contacts: CRM view changed for \(summary.viewsChanged.joined(separator: ", ")); the re-scan runs in chunks like an initial sync.")
        try engine.passUntilQuiet()
        say("CRM contacts not in the pipeline app now: \(try sql.execute(outside).scalar ?? "?"); records synced from the old view kept their links.")
        if let event = try sql.execute("SELECT payload::text FROM tandem.event_history WHERE type = 'edit_sync_complete' ORDER BY event_id DESC LIMIT 1").scalar {
            say("event: " + PassDisplay.describeCompletion(try JSONValue.parse(event), type: "edit_sync_complete", moduleOrder: ["companies", "contacts"]))
        }

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

    func heading(_ text: String) { print("\n== \(text)"); fflush(nil) }

    func say(_ text: String) { print(text); fflush(nil) }

    func seconds(since start: Date) -> String { String(format: "%.1f s", Date().timeIntervalSince(start)) }

    /// Prints a query's result as a table of at most ten rows.
    func table(_ connection: Connection, _ statement: SQL) throws {
        let result = try connection.execute(statement)
        let shown = result.rows.prefix(10)
        let cells = shown.map { $0.map { Format.clip($0 ?? "∅", 60) } }
        let numeric = Set(result.columns.indices.filter { column in
            !shown.isEmpty && shown.allSatisfy { row in row[column].map { Int64($0) != nil || Double($0) != nil } ?? true }
        })
        for line in TextTable(headers: result.columns, rows: cells, numeric: numeric).lines { print("   " + line) }
        if result.rows.count > shown.count { print("   (and \(result.rows.count - shown.count) more rows)") }
        fflush(nil)
    }

    /// The conninfo without a password, for printing.
    static func displayable(_ conninfo: String) -> String {
        conninfo.split(separator: " ").filter { !$0.lowercased().hasPrefix("password") }.joined(separator: " ")
    }
}

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

/// The demo's initial syncs: a bar per tab updated in place on a terminal,
/// then, terminal or not, one line per module from the completion event.
final class DemoProgress: @unchecked Sendable {
    let terminal = isatty(STDOUT_FILENO) == 1
    let moduleOrder: [String]
    private var lineOpen = false
    private var lines: [String] = []

    init(moduleOrder: [String]) { self.moduleOrder = moduleOrder }

    func show(_ scans: [JobScanProgress]) {
        guard terminal, let current = scans.first(where: { !$0.done }) else { return }
        let tabScans = scans.filter { $0.tab == current.tab }
        let read = tabScans.reduce(0) { $0 + $1.read }, total = tabScans.reduce(0) { $0 + $1.total }
        let filled = total > 0 ? Int(min(read * 30 / total, 30)) : 30
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        let text = "   \(current.tab.padding(toLength: 19, withPad: " ", startingAt: 0)) [\(bar)] \(Format.percent(read, of: total)) "
            + "(\(current.module), \(StatusView.scanLabel(current.scan)): \(Format.count(current.read)) of \(Format.count(current.total)))"
        print("\r\u{1B}[K" + Format.clip(text, PassDisplay.terminalWidth() - 1), terminator: "")
        fflush(nil)
        lineOpen = true
    }

    /// Called during a pass, after its commit: kept for `finish()`.
    func event(_ json: String) {
        guard let event = try? JSONValue.parse(json), event["type"]?.string == "initial_sync_complete",
              case .object(let modules)? = event["modules"] else { return }
        var heading = "   \(event["tab"]?.string ?? "?"): initial sync complete"
        if let seconds = event["seconds"]?.double { heading += " in \(Format.seconds(seconds))" }
        heading += ", \(Format.count(event["conflicts"]?.int ?? 0)) conflicts decided by the policy"
        lines.append(heading)
        for name in moduleOrder where modules[name] != nil {
            let counts = modules[name]!
            func number(_ key: String) -> String { Format.count(counts[key]?.int ?? 0) }
            var line = "      \(name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(number("linked").leftPadded(6)) linked: "
                + "\(number("matched")) matched, \(number("created_in_crm")) created in the CRM app, \(number("created_in_pipeline")) in the pipeline app"
            if (counts["waiting"]?.int ?? 0) > 0 { line += "; \(number("waiting")) wait for a parent" }
            if (counts["errors"]?.int ?? 0) > 0 { line += "; \(number("errors")) errors" }
            lines.append(line)
        }
    }

    func finish() {
        if lineOpen { print("\r\u{1B}[K", terminator: ""); lineOpen = false }
        for line in lines { print(line) }
        lines = []
        fflush(nil)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
