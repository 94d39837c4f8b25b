import ArgumentParser
import Foundation
import TandemCore
import TandemEngine
import TandemPostgres

struct Sync: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run passes until there is nothing left to do, one line per pass.",
        discussion: """
            On a terminal the line is updated in place; otherwise each pass prints a line of its own \
            at once. Ctrl-C (or SIGTERM) abandons the pass in flight, which rolls back, and exits \
            130; `tandem sync` resumes where it stopped.
            """)
    @OptionGroup var options: IntegrationOptions
    @Flag(help: "While another host is the active syncer, wait to take over instead of failing (exit 75).")
    var wait = false

    func run() throws {
        let engine = try options.attached()
        let display = PassDisplay(terminal: isatty(STDOUT_FILENO) == 1,
                                  moduleOrder: engine.integration?.modules.map(\.name) ?? [])
        engine.eventHandler = { display.event($0) }
        Interrupt.shared.install { engine.requestStop() }
        // The interrupt handler keeps the handle: close it, so that it leaves
        // tandem._followers.
        defer { engine.close() }

        var total = PassSummary()
        var passes = 0
        var counted: [JobScanProgress] = []
        let started = Date()
        while true {
            let session = engine.backendPID
            guard Interrupt.shared.beginPass(on: engine.socket) else {
                display.closeLine()
                throw Failure(status: ExitStatus.interrupted, message: "interrupted; `tandem sync` resumes where it stopped")
            }
            let summary: PassSummary
            do {
                defer { Interrupt.shared.endPass() }
                summary = try engine.pass()
            } catch where Interrupt.shared.isRequested {
                display.closeLine()
                throw Failure(status: ExitStatus.interrupted, message: "interrupted; `tandem sync` resumes where it stopped "
                              + (sessionEnded(session) ? "(the pass in flight was rolled back)"
                                 : "(the server rolls back the pass in flight as its session ends)"))
            } catch let error as TandemError where error.code == .busy && wait && passes == 0 {
                FileHandle.standardError.write(Data("tandem: another host is the active syncer; waiting to take over (--wait)\n".utf8))
                guard try engine.waitToBecomeSyncer() else {
                    throw Failure(status: ExitStatus.interrupted, message: "interrupted while waiting; nothing was synced")
                }
                continue
            }
            passes += 1
            total.add(summary)
            // The totals of a job's progress count the records left to
            // read, a scan of every remaining record (at a million records
            // per module about a second). They are counted when a scan
            // starts, which corrects what the scans before it linked of the
            // later ones; while it runs, a pass reads only how far each
            // scan got and keeps the totals.
            var progress: [JobScanProgress] = []
            if summary.initialChunk {
                let now = (try? engine.jobProgress(counting: false)) ?? []
                let current = now.first { !$0.done }, countedCurrent = counted.first { !$0.done }
                let scanStarted = current.map { scan in countedCurrent.map(scan.isSameScan) != true } ?? false
                if counted.isEmpty || scanStarted {
                    counted = (try? engine.jobProgress()) ?? now
                    progress = counted
                } else {
                    progress = now.map { scan in scan.keepingTotal(of: counted.first(where: scan.isSameScan)) }
                }
            }
            display.pass(passes, summary, progress)
            if !summary.didWork { break }
        }
        display.finish(passes, total, Date().timeIntervalSince(started))
    }

    /// Whether the server session of the abandoned pass is gone, which
    /// means its transaction was rolled back. Asked on a new session for up
    /// to five seconds (the server notices a vanished client within a
    /// quarter of a second, client_connection_check_interval).
    func sessionEnded(_ pid: Int32) -> Bool {
        guard let probe = try? Connection(conninfo: options.database.conninfo) else { return false }
        defer { probe.close() }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if (try? probe.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = \(Int(pid))").scalar) == "0" { return true }
            usleep(50_000)
        }
        return false
    }
}

/// SIGINT and SIGTERM, handled on a dispatch queue (not in a signal
/// handler). While a pass is in flight, its session's socket is shut down:
/// libpq returns at once, nothing more reaches the server, so the pass can
/// never commit, and the server rolls it back as the session ends. The
/// engine is not asked to cancel anything.
final class Interrupt: @unchecked Sendable {
    static let shared = Interrupt()
    private let lock = NSLock()
    private var requested = false
    private var socket: Int32 = -1
    private var sources: [DispatchSourceSignal] = []
    private var action: (() -> Void)?

    /// `action` runs on every signal, on another thread.
    func install(_ action: @escaping () -> Void) {
        self.action = action
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in fire() }
            source.resume()
            sources.append(source)
        }
    }

    private func fire() {
        let socket = lock.withLock {
            requested = true
            return self.socket
        }
        if socket >= 0 { shutdown(socket, Int32(SHUT_RDWR)) }
        action?()
    }

    var isRequested: Bool { lock.withLock { requested } }

    /// A pass is about to run on `socket`; false if interrupted already.
    func beginPass(on socket: Int32) -> Bool {
        lock.withLock {
            if requested { return false }
            self.socket = socket
            return true
        }
    }

    func endPass() { lock.withLock { socket = -1 } }
}

/// One line per pass: in place on a terminal, a line of its own (flushed at
/// once) otherwise. Completion events get a line of their own after the
/// pass that completed the job.
final class PassDisplay: @unchecked Sendable {
    let terminal: Bool
    let moduleOrder: [String]
    private var lineOpen = false
    private var completions: [String] = []

    init(terminal: Bool, moduleOrder: [String]) {
        self.terminal = terminal
        self.moduleOrder = moduleOrder
    }

    /// Events arrive during `pass()`, after its commit.
    func event(_ json: String) {
        guard let event = try? JSONValue.parse(json), let type = event["type"]?.string, type.hasSuffix("_complete") else { return }
        completions.append(Self.describeCompletion(event, type: type, moduleOrder: moduleOrder))
    }

    func pass(_ number: Int, _ summary: PassSummary, _ progress: [JobScanProgress]) {
        write(Self.describe(number, summary, progress), final: !terminal)
        for line in completions { write(line, final: true) }
        completions = []
    }

    func finish(_ passes: Int, _ total: PassSummary, _ seconds: TimeInterval) {
        write("done: \(passes) pass\(passes == 1 ? "" : "es") in \(Format.seconds(seconds)); " + Self.describeTotal(total), final: true)
    }

    /// Ends an in-place line before something else is printed.
    func closeLine() {
        if lineOpen { print(""); lineOpen = false }
        fflush(nil)
    }

    private func write(_ text: String, final: Bool) {
        if terminal {
            let width = Self.terminalWidth()
            print("\r\u{1B}[K" + (final ? text : Format.clip(text, width - 1)), terminator: final ? "\n" : "")
            lineOpen = !final
        } else {
            print(text)
        }
        fflush(nil)
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 { return Int(size.ws_col) }
        return 100
    }

    static func describe(_ number: Int, _ summary: PassSummary, _ progress: [JobScanProgress]) -> String {
        var text = "pass \(number): "
        if let scan = progress.first(where: { !$0.done }) {
            let scans = progress.filter { $0.tab == scan.tab }
            let read = scans.reduce(0) { $0 + $1.read }, total = scans.reduce(0) { $0 + $1.total }
            text += "\(scan.tab) \(scan.job.replacingOccurrences(of: "_", with: " ")) \(Format.percent(read, of: total)) "
                + "(now \(scan.module), \(StatusView.scanLabel(scan.scan)) \(Format.count(scan.read)) of \(Format.count(scan.total))); "
        }
        guard summary.didWork else { return text + "nothing left to do" }
        var parts = ["read \(Format.count(summary.changesRead))"]
        if summary.matched > 0 { parts.append("matched \(Format.count(summary.matched))") }
        parts.append("CRM app \(Format.count(summary.createdInCRM)) created, \(Format.count(summary.updatedInCRM)) updated")
        parts.append("pipeline app \(Format.count(summary.createdInPipeline)) created, \(Format.count(summary.updatedInPipeline)) updated")
        for (label, value) in [("conflicts", summary.conflicts), ("errors", summary.errors), ("waiting", summary.waiting), ("deferred", summary.deferred)]
        where value > 0 {
            parts.append("\(label) \(Format.count(value))")
        }
        return text + parts.joined(separator: ", ")
    }

    static func describeTotal(_ total: PassSummary) -> String {
        "written: \(Format.count(total.written)) (created in pipeline app \(Format.count(total.createdInPipeline)), in CRM app \(Format.count(total.createdInCRM)); "
            + "updated in pipeline app \(Format.count(total.updatedInPipeline)), in CRM app \(Format.count(total.updatedInCRM))); "
            + "conflicts \(Format.count(total.conflicts)); errors \(Format.count(total.errors)); waiting \(Format.count(total.waiting))"
    }

    /// "contacts_companies: initial sync complete in 2.1 s; companies 1,300 linked (390 matched, ...)".
    static func describeCompletion(_ event: JSONValue, type: String, moduleOrder: [String]) -> String {
        let job = String(type.dropLast("_complete".count)).replacingOccurrences(of: "_", with: " ")
        var text = "\(event["tab"]?.string ?? "?"): \(job) complete"
        if let seconds = event["seconds"]?.double { text += " in \(Format.seconds(seconds))" }
        if case .object(let modules)? = event["modules"] {
            let names = moduleOrder.filter { modules[$0] != nil } + modules.keys.sorted().filter { !moduleOrder.contains($0) }
            text += "; " + names.map { name in
                let counts = modules[name]!
                func number(_ key: String) -> String { Format.count(counts[key]?.int ?? 0) }
                var detail = "\(name) \(number("linked")) linked (\(number("matched")) matched, \(number("created_in_crm")) created in the CRM app, \(number("created_in_pipeline")) in the pipeline app"
                if (counts["waiting"]?.int ?? 0) > 0 { detail += ", \(number("waiting")) waiting for a parent" }
                if (counts["errors"]?.int ?? 0) > 0 { detail += ", \(number("errors")) errors" }
                return detail + ")"
            }.joined(separator: ", ")
        }
        if let conflicts = event["conflicts"]?.int { text += "; conflicts \(Format.count(conflicts))" }
        return text
    }
}
