import Foundation
import TandemCore
import TandemEngine

/// The `tandem` command: the Swift API behind the C ABI, from a shell.
let usage = """
    usage: tandem COMMAND [options]

    commands:
      install                      install or upgrade the tandem schema
      validate  --config FILE      check a configuration against the database (R5-R8)
      configure --config FILE      validate, store and bind a configuration
      activate  TAB                activate a tab (contacts_companies, ...) and start its initial sync
      edit      TAB [--config FILE]
                                   edit sync (R14): change the tab's CRM views or field mapping to those
                                   of FILE; without --config, re-scan the views as they are now
      deactivate TAB               stop syncing a tab (R15); nothing is deleted
      reactivate TAB --policy P    bring an inactive tab back (R16); P decides records changed on both
                                   sides meanwhile: latest, crm_wins, pipeline_wins or skip
      remove    [--purge]          remove the integration (R17): all sync stops, Tandem's triggers and
                                   indexes leave the app tables, no app data is deleted; --purge also
                                   deletes its history from the tandem schema
      uninstall                    drop the tandem schema (refused while an integration is in place)
      sync [--wait]                run passes until there is nothing left to do, print what they did;
                                   --wait: while another host is the active syncer, wait to take over
      run [--reconnect-timeout S]  follow changes until interrupted (Ctrl-C); a lost connection or a
                                   server restart is restored for up to S seconds (default 300)
      status                       the integration and its tabs, as JSON
      report    NAME [--limit N]   a reporting view as JSON (tab_status, pending_changes, links,
                                   conflicts, record_errors, runs, events)
      demo      [--follow]         the demo on the reference apps (see README)

    options:
      --database CONNINFO          libpq connection string (default: $TANDEM_DATABASE_URL)
      --integration NAME           the integration to attach to (default: "default")
    """

struct Arguments {
    var command = ""
    var positional: [String] = []
    var options: [String: String] = [:]
    var flags: Set<String> = []

    init(_ arguments: [String]) throws {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if ["--follow", "--help", "-h", "--purge", "--wait"].contains(argument) {
                flags.insert(argument)
            } else if argument.hasPrefix("--") {
                guard index + 1 < arguments.count else { throw TandemError(.misuse, "option \(argument) needs a value") }
                options[String(argument.dropFirst(2))] = arguments[index + 1]
                index += 1
            } else if command.isEmpty {
                command = argument
            } else {
                positional.append(argument)
            }
            index += 1
        }
    }
}

func conninfo(_ arguments: Arguments) throws -> String {
    if let value = arguments.options["database"] ?? ProcessInfo.processInfo.environment["TANDEM_DATABASE_URL"], !value.isEmpty {
        return value
    }
    throw TandemError(.misuse, "no database: pass --database CONNINFO or set TANDEM_DATABASE_URL")
}

func readConfig(_ arguments: Arguments) throws -> String {
    guard let path = arguments.options["config"] else { throw TandemError(.misuse, "--config FILE is required") }
    guard let data = FileManager.default.contents(atPath: path) else { throw TandemError(.config, "cannot read configuration file \(path)") }
    // The C ABI refuses text that is not UTF-8 (TANDEM_MISUSE); so does the
    // CLI, with the same message, instead of replacing the bad bytes.
    guard let text = String(data: data, encoding: .utf8) else { throw TandemError.notUTF8("config_json") }
    return text
}

func attached(_ arguments: Arguments) throws -> Engine {
    let engine = try Engine(conninfo: try conninfo(arguments))
    try engine.attach(arguments.options["integration"] ?? "default")
    return engine
}

nonisolated(unsafe) var runningEngine: Engine?

func main() -> Int32 {
    do {
        let arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
        if arguments.command.isEmpty || arguments.flags.contains("--help") || arguments.flags.contains("-h") {
            print(usage)
            return arguments.command.isEmpty && !arguments.flags.contains("--help") ? 2 : 0
        }
        switch arguments.command {
        case "install":
            try Engine(conninfo: try conninfo(arguments)).install()
            print("tandem schema installed")
        case "validate":
            let config = try readConfig(arguments)
            let (integration, _) = try Engine(conninfo: try conninfo(arguments)).validate(config)
            print("configuration is valid: integration '\(integration.name)', tabs \(integration.tabs.map(\.rawValue).joined(separator: ", "))")
        case "configure":
            let config = try readConfig(arguments)
            let engine = try Engine(conninfo: try conninfo(arguments))
            try engine.configure(config)
            print("configured integration '\(engine.integration?.name ?? "")'")
        case "activate":
            guard let tab = arguments.positional.first else { throw TandemError(.misuse, "activate needs a TAB") }
            if try attached(arguments).activate(tab) {
                print("activated \(tab); its initial sync runs with `tandem sync` or `tandem run`")
            } else {
                print("\(tab) is active already: nothing to start")
            }
        case "edit":
            guard let tab = arguments.positional.first else { throw TandemError(.misuse, "edit needs a TAB") }
            let json = arguments.options["config"] == nil ? nil : try readConfig(arguments)
            let summary = try attached(arguments).editSync(tab, configuration: json)
            var lines = ["edit sync of \(tab):"]
            if !summary.viewsChanged.isEmpty { lines.append("  CRM view changed: \(summary.viewsChanged.joined(separator: ", "))") }
            for (module, fields) in summary.newlyMapped.sorted(by: { $0.key < $1.key }) {
                lines.append("  newly mapped in \(module): \(fields.joined(separator: ", ")) (brought into line for every linked record)")
            }
            for (module, fields) in summary.unmapped.sorted(by: { $0.key < $1.key }) {
                lines.append("  no longer synced in \(module): \(fields.joined(separator: ", ")) (both apps keep their values)")
            }
            lines.append(summary.rescanScheduled
                ? "  the re-scan runs with `tandem sync` or `tandem run`; watch tandem.tab_status"
                : "  the tab is inactive: its reactivation will look at everything")
            print(lines.joined(separator: "\n"))
        case "deactivate":
            guard let tab = arguments.positional.first else { throw TandemError(.misuse, "deactivate needs a TAB") }
            print(try attached(arguments).deactivate(tab)
                  ? "deactivated \(tab): its data no longer sync; links and mirrors are kept (reactivate it with a --policy)"
                  : "\(tab) is inactive already")
        case "reactivate":
            guard let tab = arguments.positional.first else { throw TandemError(.misuse, "reactivate needs a TAB") }
            guard let name = arguments.options["policy"] else {
                throw TandemError(.misuse, "reactivate needs --policy (\(ConflictPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let policy = ConflictPolicy(rawValue: name) else {
                throw TandemError(.misuse, "unknown policy '\(name)' (policies: \(ConflictPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            print(try attached(arguments).reactivate(tab, policy: policy)
                  ? "reactivated \(tab) with \(name) for records changed on both sides while it was inactive; the catch-up runs with `tandem sync` or `tandem run`"
                  : "\(tab) is active already: nothing to reactivate")
        case "remove":
            let purge = arguments.flags.contains("--purge")
            let engine: Engine
            do {
                engine = try attached(arguments)
            } catch let error as TandemError where error.code == .notFound {
                print("\(error.message): nothing to remove")
                return 0
            }
            let name = engine.integration?.name ?? ""
            var leftForOwner: [String] = []
            print(try engine.remove(purge: purge, leftForOwner: &leftForOwner)
                  ? "removed integration '\(name)': nothing syncs, Tandem's triggers and indexes are gone from the app tables, no app data was deleted\(purge ? "; its history was purged" : "; its history stays in the tandem schema")"
                  : "integration '\(name)' was removed already")
            if !leftForOwner.isEmpty {
                print("the match indexes the tables' owner created stay until the owner runs:\n" + leftForOwner.joined(separator: "\n"))
            }
        case "uninstall":
            try Engine(conninfo: try conninfo(arguments)).uninstall()
            print("the tandem schema is gone from this database")
        case "sync":
            let engine = try attached(arguments)
            engine.eventHandler = { print($0); fflush(nil) }
            let summary: PassSummary
            do {
                summary = try engine.passUntilQuiet()
            } catch let error as TandemError where error.code == .busy && arguments.flags.contains("--wait") {
                FileHandle.standardError.write(Data("tandem: another host is the active syncer; waiting to take over (--wait)\n".utf8))
                runningEngine = engine
                signal(SIGINT) { _ in runningEngine?.requestStop() }
                signal(SIGTERM) { _ in runningEngine?.requestStop() }
                guard try engine.waitToBecomeSyncer() else {
                    FileHandle.standardError.write(Data("tandem: interrupted while waiting; nothing was synced\n".utf8))
                    return 130
                }
                summary = try engine.passUntilQuiet()
            }
            print("written: \(summary.written) (created in pipeline app \(summary.createdInPipeline), in CRM app \(summary.createdInCRM); updated in pipeline app \(summary.updatedInPipeline), in CRM app \(summary.updatedInCRM)); conflicts \(summary.conflicts); errors \(summary.errors); waiting \(summary.waiting)")
        case "run":
            let engine = try attached(arguments)
            if let value = arguments.options["reconnect-timeout"] {
                guard let seconds = Double(value), seconds >= 0 else {
                    throw TandemError(.misuse, "--reconnect-timeout needs a number of seconds (0: do not reconnect), not '\(value)'")
                }
                engine.reconnectTimeout = seconds
            }
            engine.eventHandler = { print($0); fflush(nil) }
            runningEngine = engine
            signal(SIGINT) { _ in runningEngine?.requestStop() }
            signal(SIGTERM) { _ in runningEngine?.requestStop() }
            try engine.run()
        case "status":
            print(try attached(arguments).status())
        case "report":
            guard let name = arguments.positional.first else { throw TandemError(.misuse, "report needs a NAME") }
            print(try attached(arguments).report(name, limit: Int(arguments.options["limit"] ?? "100") ?? 100))
        case "demo":
            try Demo(conninfo: try conninfo(arguments), follow: arguments.flags.contains("--follow")).run()
        default:
            throw TandemError(.misuse, "unknown command '\(arguments.command)'\n\n\(usage)")
        }
        return 0
    } catch let error as TandemError {
        FileHandle.standardError.write(Data("tandem: \(error.code.text): \(error.message)\n".utf8))
        return error.code == .misuse ? 2 : 1
    } catch {
        FileHandle.standardError.write(Data("tandem: \(error)\n".utf8))
        return 1
    }
}

exit(main())
