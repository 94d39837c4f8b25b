// The C ABI declared in include/tandem.h: exports only. Each function checks
// its arguments, calls the engine, and turns every error into a result code
// plus a message kept on the handle. Nothing is thrown across the boundary.
import CTandemHeader
import Foundation
import TandemCore
import TandemEngine

/// The object behind `tandem *`.
final class Handle {
    let engine: Engine
    var code: ResultCode = .ok
    /// tandem_extended_errcode(): which case of `code`.
    var extended: Int32 = 0
    /// Borrowed by the host until the next call on the handle. Optional
    /// because strdup() may fail (out of memory): that must not trap.
    var message: UnsafeMutablePointer<CChar>?
    var sqlstate: UnsafeMutablePointer<CChar>?
    var callback: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?
    var context: UnsafeMutableRawPointer?
    /// Called on `context` when the event callback is replaced, cleared or
    /// the handle closed (tandem_set_event_callback_v2).
    var destroyContext: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?

    init(engine: Engine) {
        self.engine = engine
        message = strdup("")
        sqlstate = strdup("")
    }

    deinit {
        releaseContext()
        free(message)
        free(sqlstate)
    }

    /// Gives the event callback's context back to its destroy function, once.
    func releaseContext() {
        let (destroy, context) = (destroyContext, self.context)
        destroyContext = nil
        self.context = nil
        destroy?(context)
    }

    func set(_ code: ResultCode, _ text: String, sqlstate state: String? = nil, extended: Int32? = nil) -> Int32 {
        self.code = code
        self.extended = extended ?? code.rawValue
        free(message)
        message = strdup(text)
        free(sqlstate)
        sqlstate = strdup(state ?? "")
        return code.rawValue
    }

    /// Runs one call: success clears the error; any error becomes its code.
    func call(_ work: () throws -> Void) -> Int32 {
        do {
            try work()
            return set(.ok, "")
        } catch let error as TandemError {
            return set(error.code, error.message, sqlstate: error.sqlstate, extended: error.extended)
        } catch {
            return set(.error, String(describing: error))
        }
    }
}

/// Static texts for NULL handles; never freed.
private let nullHandleMessage: StaticString = "the tandem handle is NULL"
private let emptyText: StaticString = ""

private func staticText(_ text: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

private func handle(_ pointer: OpaquePointer?) -> Handle? {
    guard let pointer else { return nil }
    return Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

/// A C string argument as Swift text; nil for NULL or invalid UTF-8.
private func text(_ pointer: UnsafePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    return String(validatingCString: pointer)
}

/// Checks a string argument; on failure the handle's error says which.
private func argument(_ pointer: UnsafePointer<CChar>?, _ name: String, on handle: Handle) throws -> String {
    guard let pointer else { throw TandemError(.misuse, "\(name) is NULL") }
    guard let value = String(validatingCString: pointer) else { throw TandemError.notUTF8(name) }
    return value
}

private func give(_ string: String, to out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) {
    out.pointee = strdup(string)
}

// MARK: - Version

/// TANDEM_VERSION of include/tandem.h, the one place the version lives;
/// made once, never freed.
nonisolated(unsafe) private let libraryVersion: UnsafeMutablePointer<CChar>? = strdup(TANDEM_VERSION)

@_cdecl("tandem_libversion")
public func tandem_libversion() -> UnsafePointer<CChar> {
    libraryVersion.map { UnsafePointer($0) } ?? staticText(emptyText)
}

@_cdecl("tandem_libversion_number")
public func tandem_libversion_number() -> Int32 { Int32(TANDEM_VERSION_NUMBER) }

@_cdecl("tandem_errstr")
public func tandem_errstr(_ code: Int32) -> UnsafePointer<CChar> {
    switch ResultCode(rawValue: code) {
    case .ok: return staticText("not an error")
    case .error: return staticText("internal error")
    case .misuse: return staticText("library used incorrectly")
    case .config: return staticText("configuration error")
    case .permission: return staticText("permission denied")
    case .database: return staticText("database error")
    case .connect: return staticText("connection error")
    case .busy: return staticText("another host is the active syncer")
    case .state: return staticText("not allowed in the current state")
    case .notFound: return staticText("not found")
    case .removed: return staticText("the integration was removed")
    case .canceled: return staticText("the pass was canceled")
    case nil: return staticText("unknown result code")
    }
}

// MARK: - Lifecycle

@_cdecl("tandem_open")
public func tandem_open(_ conninfo: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                        _ errmsg: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    func fail(_ code: ResultCode, _ message: String) -> Int32 {
        if let errmsg { errmsg.pointee = strdup(message) }
        return code.rawValue
    }
    guard let out else { return fail(.misuse, "tandem_open: the out-parameter is NULL") }
    guard let conninfo else { return fail(.misuse, "tandem_open: the connection string is NULL") }
    guard let info = text(conninfo) else { return fail(.misuse, "tandem_open: the connection string is not valid UTF-8") }
    do {
        let engine = try Engine(conninfo: info)
        let object = Handle(engine: engine)
        out.pointee = OpaquePointer(Unmanaged.passRetained(object).toOpaque())
        return ResultCode.ok.rawValue
    } catch let error as TandemError {
        return fail(error.code, error.message)
    } catch {
        return fail(.connect, String(describing: error))
    }
}

@_cdecl("tandem_close")
public func tandem_close(_ db: OpaquePointer?) {
    guard let db else { return }
    let object = Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(db))
    let handle = object.takeUnretainedValue()
    handle.engine.close()
    handle.engine.eventHandler = nil
    handle.engine.logHandler = nil
    handle.releaseContext()
    object.release()
}

// MARK: - Errors

@_cdecl("tandem_errcode")
public func tandem_errcode(_ db: OpaquePointer?) -> Int32 {
    handle(db)?.code.rawValue ?? ResultCode.misuse.rawValue
}

@_cdecl("tandem_errmsg")
public func tandem_errmsg(_ db: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let object = handle(db) else { return staticText(nullHandleMessage) }
    return object.message.map { UnsafePointer($0) } ?? staticText(emptyText)
}

@_cdecl("tandem_extended_errcode")
public func tandem_extended_errcode(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.code == .ok ? ResultCode.ok.rawValue : object.extended
}

@_cdecl("tandem_sqlstate")
public func tandem_sqlstate(_ db: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let object = handle(db) else { return staticText(emptyText) }
    return object.sqlstate.map { UnsafePointer($0) } ?? staticText(emptyText)
}

// MARK: - Schema and configuration

@_cdecl("tandem_install")
public func tandem_install(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.install() }
}

@_cdecl("tandem_validate")
public func tandem_validate(_ db: OpaquePointer?, _ config: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.validate(try argument(config, "config_json", on: object)) }
}

@_cdecl("tandem_configure")
public func tandem_configure(_ db: OpaquePointer?, _ config: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.configure(try argument(config, "config_json", on: object)) }
}

@_cdecl("tandem_attach")
public func tandem_attach(_ db: OpaquePointer?, _ integration: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.attach(try argument(integration, "integration", on: object)) }
}

// MARK: - Tabs and sync

@_cdecl("tandem_activate")
public func tandem_activate(_ db: OpaquePointer?, _ tab: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.activate(try argument(tab, "tab", on: object)) }
}

// MARK: - Lifecycle of tabs and of the integration

@_cdecl("tandem_edit_sync")
public func tandem_edit_sync(_ db: OpaquePointer?, _ tab: UnsafePointer<CChar>?, _ config: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call {
        let name = try argument(tab, "tab", on: object)
        let json = try config.map { _ in try argument(config, "config_json", on: object) }
        try object.engine.editSync(name, configuration: json)
    }
}

@_cdecl("tandem_deactivate")
public func tandem_deactivate(_ db: OpaquePointer?, _ tab: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.deactivate(try argument(tab, "tab", on: object)) }
}

@_cdecl("tandem_reactivate")
public func tandem_reactivate(_ db: OpaquePointer?, _ tab: UnsafePointer<CChar>?, _ policy: UnsafePointer<CChar>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call {
        let name = try argument(tab, "tab", on: object)
        let policyName = try argument(policy, "policy", on: object)
        guard let conflictPolicy = ConflictPolicy(rawValue: policyName) else {
            throw TandemError(.misuse, "unknown conflict policy '\(policyName)' (policies: \(ConflictPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        try object.engine.reactivate(name, policy: conflictPolicy)
    }
}

@_cdecl("tandem_remove")
public func tandem_remove(_ db: OpaquePointer?, _ purge: Int32) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.remove(purge: purge != 0) }
}

@_cdecl("tandem_uninstall")
public func tandem_uninstall(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.uninstall() }
}

@_cdecl("tandem_sync")
public func tandem_sync(_ db: OpaquePointer?, _ changes: UnsafeMutablePointer<Int64>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call {
        let summary = try object.engine.pass()
        changes?.pointee = summary.written
    }
}

@_cdecl("tandem_sync_v2")
public func tandem_sync_v2(_ db: OpaquePointer?, _ result: UnsafeMutablePointer<tandem_sync_result>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard let result else { return object.set(.misuse, "tandem_sync_v2: result is NULL") }
    let given = result.pointee.size
    guard let firstCount = MemoryLayout<tandem_sync_result>.offset(of: \tandem_sync_result.read),
          given >= firstCount + MemoryLayout<Int64>.size else {
        return object.set(.misuse, "tandem_sync_v2: set result->size to sizeof(tandem_sync_result) before the call")
    }
    return object.call {
        let summary = try object.engine.pass()
        // Only the fields that fit in the caller's struct: it may be older.
        let raw = UnsafeMutableRawPointer(result)
        var filled = firstCount
        func store<T>(_ value: T, _ field: PartialKeyPath<tandem_sync_result>) {
            guard let offset = MemoryLayout<tandem_sync_result>.offset(of: field),
                  offset + MemoryLayout<T>.size <= given else { return }
            raw.storeBytes(of: value, toByteOffset: offset, as: T.self)
            filled = max(filled, offset + MemoryLayout<T>.size)
        }
        store(summary.changesRead, \tandem_sync_result.read)
        store(summary.matched, \tandem_sync_result.matched)
        store(summary.createdInPipeline, \tandem_sync_result.created_in_pipeline)
        store(summary.createdInCRM, \tandem_sync_result.created_in_crm)
        store(summary.updatedInPipeline, \tandem_sync_result.updated_in_pipeline)
        store(summary.updatedInCRM, \tandem_sync_result.updated_in_crm)
        store(summary.conflicts, \tandem_sync_result.conflicts)
        store(summary.errors, \tandem_sync_result.errors)
        store(summary.waiting, \tandem_sync_result.waiting)
        store(summary.deferred, \tandem_sync_result.deferred)
        store(Int32(summary.didWork ? 1 : 0), \tandem_sync_result.more)
        // The struct's own padding counts as filled when the whole struct fits.
        if given >= MemoryLayout<tandem_sync_result>.size { filled = MemoryLayout<tandem_sync_result>.size }
        result.pointee.size = filled
    }
}

@_cdecl("tandem_cancel")
public func tandem_cancel(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    object.engine.requestCancel()
    return ResultCode.ok.rawValue
}

@_cdecl("tandem_socket")
public func tandem_socket(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return -1 }
    let socket = object.engine.socket
    if socket < 0 {
        _ = object.set(.connect, "the connection is closed")
    } else {
        _ = object.set(.ok, "")
    }
    return socket
}

@_cdecl("tandem_process")
public func tandem_process(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.process() }
}

@_cdecl("tandem_timeout")
public func tandem_timeout(_ db: OpaquePointer?, _ milliseconds: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard let milliseconds else { return object.set(.misuse, "tandem_timeout: milliseconds is NULL") }
    return object.call { milliseconds.pointee = try object.engine.waitMilliseconds() }
}

@_cdecl("tandem_run")
public func tandem_run(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return object.call { try object.engine.run() }
}

@_cdecl("tandem_set_reconnect_timeout")
public func tandem_set_reconnect_timeout(_ db: OpaquePointer?, _ seconds: Double) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard seconds >= 0, seconds.isFinite else { return object.set(.misuse, "the reconnect timeout must be a number of seconds, 0 or more") }
    object.engine.reconnectTimeout = seconds
    return object.set(.ok, "")
}

@_cdecl("tandem_stop")
public func tandem_stop(_ db: OpaquePointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    object.engine.requestStop()
    return ResultCode.ok.rawValue
}

// MARK: - Events

@_cdecl("tandem_set_event_callback")
public func tandem_set_event_callback(_ db: OpaquePointer?,
                                      _ callback: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?,
                                      _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return setEventCallback(object, callback, context, destroy: nil)
}

@_cdecl("tandem_set_event_callback_v2")
public func tandem_set_event_callback_v2(_ db: OpaquePointer?,
                                         _ callback: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?,
                                         _ context: UnsafeMutableRawPointer?,
                                         _ destroy: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    return setEventCallback(object, callback, context, destroy: destroy)
}

private func setEventCallback(_ object: Handle,
                              _ callback: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?,
                              _ context: UnsafeMutableRawPointer?,
                              destroy: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?) -> Int32 {
    // The old context goes back to its owner before the new one is kept.
    object.releaseContext()
    object.callback = callback
    if callback == nil {
        destroy?(context)
    } else {
        object.context = context
        object.destroyContext = destroy
    }
    if let callback {
        object.engine.eventHandler = { [unowned object] event in
            event.withCString { callback(object.context, $0) }
        }
    } else {
        object.engine.eventHandler = nil
    }
    return object.set(.ok, "")
}

@_cdecl("tandem_set_log_callback")
public func tandem_set_log_callback(_ db: OpaquePointer?,
                                    _ callback: (@convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?) -> Void)?,
                                    _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    if let callback {
        // The context is the caller's; it is only passed through.
        let box = UInt(bitPattern: context)
        object.engine.logHandler = { level, message in
            message.withCString { callback(UnsafeMutableRawPointer(bitPattern: box), level.rawValue, $0) }
        }
    } else {
        object.engine.logHandler = nil
    }
    return object.set(.ok, "")
}

// MARK: - Reporting

@_cdecl("tandem_status")
public func tandem_status(_ db: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard let out else { return object.set(.misuse, "json_out is NULL") }
    return object.call { give(try object.engine.status(), to: out) }
}

@_cdecl("tandem_report")
public func tandem_report(_ db: OpaquePointer?, _ report: UnsafePointer<CChar>?, _ limit: Int32,
                          _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard let out else { return object.set(.misuse, "json_out is NULL") }
    return object.call {
        let name = try argument(report, "report", on: object)
        give(try object.engine.report(name, limit: Int(max(limit, 0))), to: out)
    }
}

@_cdecl("tandem_report_page")
public func tandem_report_page(_ db: OpaquePointer?, _ report: UnsafePointer<CChar>?, _ after: UnsafePointer<CChar>?,
                               _ limit: Int32, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let object = handle(db) else { return ResultCode.misuse.rawValue }
    guard let out else { return object.set(.misuse, "json_out is NULL") }
    return object.call {
        let name = try argument(report, "report", on: object)
        let key = try after.map { _ in try argument(after, "after", on: object) }
        give(try object.engine.reportPage(name, after: key, limit: Int(limit)), to: out)
    }
}

// MARK: - Memory

@_cdecl("tandem_free")
public func tandem_free(_ pointer: UnsafeMutableRawPointer?) {
    free(pointer)
}
