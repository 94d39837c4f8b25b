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
      sync                         run passes until there is nothing left to do, print what they did
      run                          follow changes until interrupted (Ctrl-C)
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
            if argument == "--follow" || argument == "--help" || argument == "-h" {
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
            try attached(arguments).activate(tab)
            print("activated \(tab); its initial sync runs with `tandem sync` or `tandem run`")
        case "sync":
            let engine = try attached(arguments)
            engine.eventHandler = { print($0) }
            let summary = try engine.passUntilQuiet()
            print("written: \(summary.written) (created in pipeline app \(summary.createdInPipeline), in CRM app \(summary.createdInCRM); updated in pipeline app \(summary.updatedInPipeline), in CRM app \(summary.updatedInCRM)); conflicts \(summary.conflicts); errors \(summary.errors); waiting \(summary.waiting)")
        case "run":
            let engine = try attached(arguments)
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
