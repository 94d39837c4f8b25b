import ArgumentParser
import Foundation
import TandemCore
import TandemEngine

// MARK: - Options every command shares

struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database"),
            help: ArgumentHelp("libpq connection string (default: $TANDEM_DATABASE_URL).", valueName: "conninfo"))
    var given: String?

    var conninfo: String {
        if let given, !given.isEmpty { return given }
        return ProcessInfo.processInfo.environment["TANDEM_DATABASE_URL"] ?? ""
    }

    func validate() throws {
        if conninfo.isEmpty { throw ValidationError("no database: pass --database CONNINFO or set TANDEM_DATABASE_URL") }
    }

    func engine() throws -> Engine { try Engine(conninfo: conninfo) }
}

struct IntegrationOptions: ParsableArguments {
    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("The integration to attach to.", valueName: "name"))
    var integration = "default"

    func attached() throws -> Engine {
        let engine = try database.engine()
        try engine.attach(integration)
        return engine
    }
}

struct ConfigFile: ParsableArguments {
    @Option(help: ArgumentHelp("The configuration (JSON; README, \"Configuration\").", valueName: "file"))
    var config: String

    func text() throws -> String { try readConfiguration(config) }
}

func readConfiguration(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw Failure(status: ExitStatus.noInput, message: "cannot read the configuration file \(path)")
    }
    // The C ABI refuses text that is not UTF-8 (TANDEM_MISUSE); so does the
    // CLI, with the same message, instead of replacing the bad bytes.
    guard let text = String(data: data, encoding: .utf8) else { throw TandemError.notUTF8("config_json") }
    return text
}

extension Tab: ExpressibleByArgument {}
extension ConflictPolicy: ExpressibleByArgument {}

let tabsHelp = "The tab."

// MARK: - Setup

struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Install or upgrade the tandem schema.")
    @OptionGroup var options: DatabaseOptions

    func run() throws {
        try options.engine().install()
        print("tandem schema installed")
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a configuration against the database (R5-R8) without storing it.")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var file: ConfigFile

    func run() throws {
        // The file first: a bad file is said before anything connects.
        let text = try file.text()
        let (integration, _) = try options.engine().validate(text)
        print("configuration is valid: integration '\(integration.name)', tabs \(integration.tabs.map(\.rawValue).joined(separator: ", "))")
    }
}

struct Configure: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate, store and bind a configuration.")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var file: ConfigFile

    func run() throws {
        let text = try file.text()
        let engine = try options.engine()
        try engine.configure(text)
        print("configured integration '\(engine.integration?.name ?? "")'")
    }
}

// MARK: - Lifecycle

struct Activate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activate a tab and schedule its initial sync (contacts_companies first, R2).",
        discussion: "The initial sync runs with `tandem sync` or `tandem run`.")
    @OptionGroup var options: IntegrationOptions
    @Argument(help: ArgumentHelp(tabsHelp, valueName: "tab")) var tab: Tab

    func run() throws {
        if try options.attached().activate(tab.rawValue) {
            print("activated \(tab.rawValue); its initial sync runs with `tandem sync` or `tandem run`")
        } else {
            print("\(tab.rawValue) is active already: nothing to start")
        }
    }
}

struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Edit sync (R14): change a tab's CRM views or field mapping.",
        discussion: """
            With --config FILE, the whole new configuration; only this tab's CRM views and field \
            mappings may differ. Without it, the views are re-scanned as they are now.
            """)
    @OptionGroup var options: IntegrationOptions
    @Argument(help: ArgumentHelp("contacts_companies or pipelines_products.", valueName: "tab")) var tab: Tab
    @Option(help: ArgumentHelp("The new configuration (JSON).", valueName: "file")) var config: String?

    func run() throws {
        let json = try config.map(readConfiguration)
        let summary = try options.attached().editSync(tab.rawValue, configuration: json)
        var lines = ["edit sync of \(tab.rawValue):"]
        if !summary.viewsChanged.isEmpty { lines.append("  CRM view changed: \(summary.viewsChanged.joined(separator: ", "))") }
        for (module, fields) in summary.newlyMapped.sorted(by: { $0.key < $1.key }) {
            lines.append("  newly mapped in \(module): \(fields.joined(separator: ", ")) (brought into line for every linked record)")
        }
        for (module, fields) in summary.unmapped.sorted(by: { $0.key < $1.key }) {
            lines.append("  no longer synced in \(module): \(fields.joined(separator: ", ")) (both apps keep their values)")
        }
        lines.append(summary.rescanScheduled
            ? "  the re-scan runs with `tandem sync` or `tandem run`; watch `tandem status`"
            : "  the tab is inactive: its reactivation will look at everything")
        print(lines.joined(separator: "\n"))
    }
}

struct Deactivate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop syncing a tab (R15); links, mirrors and all data are kept.")
    @OptionGroup var options: IntegrationOptions
    @Argument(help: ArgumentHelp(tabsHelp, valueName: "tab")) var tab: Tab

    func run() throws {
        print(try options.attached().deactivate(tab.rawValue)
              ? "deactivated \(tab.rawValue): its data no longer sync; links and mirrors are kept (reactivate it with a --policy)"
              : "\(tab.rawValue) is inactive already")
    }
}

struct Reactivate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring an inactive tab back (R16).",
        discussion: "The policy decides the records changed on both sides while the tab was inactive.")
    @OptionGroup var options: IntegrationOptions
    @Argument(help: ArgumentHelp(tabsHelp, valueName: "tab")) var tab: Tab
    @Option(help: ArgumentHelp("latest, crm_wins, pipeline_wins or skip.", valueName: "policy"))
    var policy: ConflictPolicy

    func run() throws {
        print(try options.attached().reactivate(tab.rawValue, policy: policy)
              ? "reactivated \(tab.rawValue) with \(policy.rawValue) for records changed on both sides while it was inactive; the catch-up runs with `tandem sync` or `tandem run`"
              : "\(tab.rawValue) is active already: nothing to reactivate")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the integration (R17): all sync stops, no app data is deleted.",
        discussion: "Tandem's triggers and indexes leave the app tables; the history stays in the tandem schema unless --purge.")
    @OptionGroup var options: IntegrationOptions
    @Flag(help: "Also delete the integration's history from the tandem schema.") var purge = false

    func run() throws {
        let engine: Engine
        do {
            engine = try options.attached()
        } catch let error as TandemError where error.code == .notFound {
            print("\(error.message): nothing to remove")
            return
        }
        let name = engine.integration?.name ?? ""
        var leftForOwner: [String] = []
        print(try engine.remove(purge: purge, leftForOwner: &leftForOwner)
              ? "removed integration '\(name)': nothing syncs, Tandem's triggers and indexes are gone from the app tables, no app data was deleted\(purge ? "; its history was purged" : "; its history stays in the tandem schema")"
              : "integration '\(name)' was removed already")
        if !leftForOwner.isEmpty {
            print("the match indexes the tables' owner created stay until the owner runs:\n" + leftForOwner.joined(separator: "\n"))
        }
    }
}

struct Uninstall: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop the tandem schema (refused while an integration is in place).")
    @OptionGroup var options: DatabaseOptions

    func run() throws {
        try options.engine().uninstall()
        print("the tandem schema is gone from this database")
    }
}

// MARK: - Syncing

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow changes until interrupted (Ctrl-C), printing events as JSON lines.",
        discussion: "A lost connection or a server restart is restored for up to the reconnect timeout.")
    @OptionGroup var options: IntegrationOptions
    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds to keep restoring a lost connection; 0: do not reconnect.", valueName: "seconds"))
    var reconnectTimeout: Double = 300

    func validate() throws {
        guard reconnectTimeout >= 0, reconnectTimeout.isFinite else {
            throw ValidationError("--reconnect-timeout needs a number of seconds, 0 or more (0: do not reconnect)")
        }
    }

    func run() throws {
        let engine = try options.attached()
        engine.reconnectTimeout = reconnectTimeout
        engine.eventHandler = { print($0); fflush(nil) }
        Interrupt.shared.install { engine.requestStop() }
        // The interrupt handler keeps the handle: close it, so that it leaves
        // tandem._followers (a follower listed but gone makes writers notify).
        defer { engine.close() }
        try engine.run()
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The integration, its active syncer and its tabs in sync order.",
        discussion: "Progress totals are counted when asked: records read plus records still to read.")
    @OptionGroup var options: IntegrationOptions
    @Flag(help: "Print the status as JSON (the C API's tandem_status).") var json = false

    func run() throws {
        let text = try options.attached().status()
        if json {
            print(try JSONValue.parse(text).pretty)
        } else {
            for line in StatusView(try JSONValue.parse(text)).lines { print(line) }
        }
    }
}

/// A report name: the C API's names, or the view names they read.
struct ReportName: ExpressibleByArgument {
    let name: String

    init?(argument: String) {
        if Engine.reports[argument] != nil {
            name = argument
        } else if let known = Engine.reports.first(where: { $0.value == argument })?.key {
            name = known
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] {
        Engine.reports.sorted { $0.key < $1.key }.map { $0.key == $0.value ? $0.key : "\($0.key) (\($0.value))" }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A reporting view of the integration, as a table or JSON.",
        discussion: "Names: \(ReportName.allValueStrings.joined(separator: ", ")). Newest rows first where rows have a time.")
    @OptionGroup var options: IntegrationOptions
    @Argument(help: ArgumentHelp("The report (or its view's name).", valueName: "name")) var name: ReportName
    @Option(parsing: .unconditional, help: ArgumentHelp("At most this many rows (default: 20 in a table, 100 as JSON).", valueName: "n"))
    var limit: Int?
    @Flag(help: "Print the rows as JSON (the C API's tandem_report).") var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit needs a number of rows, 1 or more, not \(limit)") }
    }

    func run() throws {
        let rows = limit ?? (json ? 100 : 20)
        let text = try options.attached().report(name.name, limit: rows)
        let value = try JSONValue.parse(text)
        if json {
            print(value.pretty)
        } else {
            for line in ReportView(name: name.name, rows: value.array ?? [], limit: rows, limited: limit != nil).lines { print(line) }
        }
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The demo on the reference apps (README, \"The two commands\").",
        discussion: "TANDEM_APPS_DIR names sql/apps when run elsewhere; TANDEM_DEMO_RECORDS the records per module (3000).")
    @OptionGroup var options: DatabaseOptions
    @Flag(help: "Keep following changes until Ctrl-C (the integration is kept).") var follow = false

    func run() throws {
        try DemoStory(conninfo: options.conninfo, follow: follow).run()
    }
}
