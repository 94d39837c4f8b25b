import Foundation
import TandemCore
import TandemPostgres

/// The background jobs of a tab run in chunks inside ordinary passes: each
/// chunk feeds records to the same merge as live changes and commits with
/// its progress, so a host killed midway resumes where it stopped (B5) and
/// people can watch tandem.tab_status meanwhile.
///  - initial_sync (R10): every unlinked record of both apps (the CRM view
///    only, R7), after the module's records are matched in one statement
///    (`ModuleCompiler.matchAll`), as the first chunk is queued;
///  - edit_sync (R14): unlinked CRM records now in the view, and every linked
///    record when fields became mapped, to bring them into line;
///  - reactivation (R16): every linked record diffed against its mirror, then
///    the records added on either side while the tab was inactive.
/// Modules go parents first; a job's scans go in the order below.
enum Job: String {
    case initialSync = "initial_sync"
    case editSync = "edit_sync"
    case reactivation

    /// One pass over a set of records of a module, chunk by chunk.
    enum Scan: String {
        /// Unlinked records of one app.
        case pipeline, crm
        /// Linked records, by link id.
        case links
    }

    var scans: [Scan] {
        switch self {
        case .initialSync: return [.pipeline, .crm]
        case .editSync: return [.crm, .links]
        case .reactivation: return [.links, .pipeline, .crm]
        }
    }
}

struct JobChunk {
    let tab: Tab
    let job: Job
    /// nil when every module and scan is done and the job only needs completing.
    let module: String?
    let scan: Job.Scan?
    /// Records read: the chunk's, and the pairs matched before it (`matchedSetWise`).
    let read: Int64
    /// The pairs the module's set-wise match linked as this chunk was
    /// queued; nil when it did not run with this chunk. When it ran, the
    /// scan's progress says so (`setWiseMatch`), for the chunks after it.
    var matchedSetWise: Int64?
    let last: String?
    let done: Bool
    var progress: [String: [String: [String: Any]]]
}

extension Engine {
    /// The next chunk of the first tab that runs a job, queued as candidates.
    func jobChunk(_ bound: Bound, states: [String: TabRow]) throws -> JobChunk? {
        for tab in Tab.allCases {
            guard let row = states[tab.rawValue], let job = row.job.flatMap(Job.init(rawValue:)),
                  let state = TabState(rawValue: row.state), state.isSyncing else { continue }
            // A binding that does not know the tab's modules never completes its job.
            let modules = bound.integration.modules(of: tab)
            if modules.isEmpty { continue }
            let progress = row.jobProgress
            for module in modules {
                guard let compiler = bound.compilers.first(where: { $0.module.name == module.name }) else { continue }
                for scan in job.scans {
                    let entry = progress[module.name]?[scan.rawValue] ?? [:]
                    if entry["done"] as? Bool == true { continue }
                    let after = entry["after"] as? String
                    let limit = bound.integration.initialSyncChunk
                    // An initial sync matches the module's records (B3) all at
                    // once, set-wise, as its first scan starts: its chunks then
                    // hold what is left to copy, and are not matched again. A
                    // job whose first chunk an older engine queued has no such
                    // match in its progress, and its chunks are matched.
                    let first = job.scans[0]
                    let matchAll = job == .initialSync && scan == first && entry["read"] == nil ? compiler.matchAll : nil
                    let matched = try matchAll.map { try connection.execute($0).scalar.flatMap { Int64($0) } ?? 0 }
                    if let matched {
                        // The chunk's anti-join with the links is planned
                        // next: on statistics that know these links.
                        linksMadeSinceAnalyze[module.name, default: 0] += matched
                        try analyzeLinksIfStale()
                    }
                    let matchedSetWise = matched != nil || progress[module.name]?[first.rawValue]?[Self.setWiseMatch] as? Bool == true
                    let statement: SQL
                    switch scan {
                    case .pipeline: statement = compiler.initialChunk(.pipeline, after: after, limit: limit, matchedSetWise: matchedSetWise)
                    case .crm: statement = compiler.initialChunk(.crm, after: after, limit: limit, matchedSetWise: matchedSetWise)
                    case .links: statement = compiler.linksChunk(after: after, limit: limit)
                    }
                    let result = try connection.execute(statement).rows.first ?? []
                    let read = result.first.flatMap { $0.flatMap { Int64($0) } } ?? 0
                    let last = (result.count > 1 ? result[1] : nil) ?? after
                    return JobChunk(tab: tab, job: job, module: module.name, scan: scan, read: (matched ?? 0) + read,
                                    matchedSetWise: matched, last: last, done: read < Int64(limit), progress: progress)
                }
            }
            return JobChunk(tab: tab, job: job, module: nil, scan: nil, read: 0, last: nil, done: true, progress: progress)
        }
        return nil
    }

    /// What kind of rows a chunk queues, for its work tables' statistics
    /// (`PassFunction.analyze`): the chunks of one scan of one module hold
    /// the same kind, apart from the first chunk of an initial sync, which
    /// also holds the module's set-wise matches. The binding's number makes
    /// statistics taken before the work tables were made again count for
    /// nothing. nil: the chunk holds no records.
    func chunkStatistics(_ chunk: JobChunk) -> String? {
        guard let module = chunk.module, let scan = chunk.scan else { return nil }
        let kind = [String(binds), chunk.job.rawValue, scan.rawValue, chunk.matchedSetWise == nil ? "next" : "first", module]
        return kind.joined(separator: "/")
    }

    /// The key of a module's first scan in a job's progress that says its
    /// records were matched set-wise (`ModuleCompiler.matchAll`).
    static let setWiseMatch = "matched_set_wise"

    /// Records the chunk's progress and, after the last one, completes the job.
    func finishChunk(_ bound: Bound, _ chunk: JobChunk, events: inout [String]) throws {
        var progress = chunk.progress
        if let module = chunk.module, let scan = chunk.scan {
            var entry = progress[module]?[scan.rawValue] ?? [:]
            entry["after"] = chunk.last ?? NSNull()
            let read = ((entry["read"] as? NSNumber)?.int64Value ?? 0) + chunk.read
            entry["read"] = read
            entry["done"] = chunk.done
            if chunk.matchedSetWise != nil { entry[Self.setWiseMatch] = true }
            progress[module, default: [:]][scan.rawValue] = entry
            var event: [String: Any] = [
                "type": "\(chunk.job.rawValue)_progress", "integration": bound.integration.name, "tab": chunk.tab.rawValue,
                "module": module, "scan": scan.rawValue, "read": read, "done": chunk.done,
            ]
            if scan != .links { event["side"] = scan.rawValue }
            events.append(Self.json(event))
        }
        let data = try JSONSerialization.data(withJSONObject: progress, options: [.sortedKeys])
        let text = String(decoding: data, as: UTF8.self)
        // A lifecycle operation that committed meanwhile (a deactivation, say)
        // ended the job: then this pass records nothing of it.
        let progressed = try connection.execute("""
            UPDATE tandem.tabs SET initial_sync_progress = \(text)::jsonb
             WHERE integration_id = \(bound.id) AND tab = \(chunk.tab.rawValue) AND job = \(chunk.job.rawValue)
            """).affected
        if progressed == 0 { return }

        let modules = bound.integration.modules(of: chunk.tab)
        let complete = modules.allSatisfy { module in
            chunk.job.scans.allSatisfy { scan in progress[module.name]?[scan.rawValue]?["done"] as? Bool == true }
        }
        guard complete else { return }
        let type = "\(chunk.job.rawValue)_complete"
        let names = modules.map(\.name).joined(separator: ",")
        let counts = try connection.execute("""
            SELECT json_build_object(
                     'type', \(type)::text, 'integration', i.name, 'tab', \(chunk.tab.rawValue)::text,
                     'modules', (SELECT coalesce(json_object_agg(m.module, json_build_object(
                                   'linked', lc.linked, 'matched', lc.matched,
                                   'created_in_crm', lc.created_in_crm, 'created_in_pipeline', lc.created_in_pipeline,
                                   'waiting', (SELECT count(DISTINCT (w.side, w.record_id)) FROM tandem.waiting_records w WHERE w.integration_id = i.integration_id AND w.module = m.module),
                                   'errors', (SELECT count(*) FROM tandem.record_failures f WHERE f.integration_id = i.integration_id AND f.module = m.module AND f.resolved_at IS NULL))), '{}')
                                   FROM unnest(string_to_array(\(names), ',')) AS m(module)
                                  -- The module's links read once for all four counts (four scans: 1.9 s at 3,400,000 links).
                                  CROSS JOIN LATERAL (
                                   SELECT count(*) AS linked, count(*) FILTER (WHERE l.origin = 'matched') AS matched,
                                          count(*) FILTER (WHERE l.origin = 'pipeline') AS created_in_crm,
                                          count(*) FILTER (WHERE l.origin = 'crm') AS created_in_pipeline
                                     FROM tandem.links l WHERE l.integration_id = i.integration_id AND l.module = m.module) lc),
                     'conflicts', (SELECT count(*) FROM tandem.conflict_decisions c
                                    WHERE c.integration_id = i.integration_id AND c.decided_at >= t.job_started_at
                                      AND c.module = ANY (string_to_array(\(names), ','))),
                     'policy', t.job_policy,
                     'seconds', round(extract(epoch FROM clock_timestamp() - coalesce(t.job_started_at, t.activated_at))::numeric, 3))::text
              FROM tandem.integrations i JOIN tandem.tabs t ON t.integration_id = i.integration_id AND t.tab = \(chunk.tab.rawValue)
             WHERE i.integration_id = \(bound.id)
            """)
        let event = counts.scalar ?? "{}"
        try connection.execute("""
            UPDATE tandem.tabs SET state = 'active', job = NULL, job_policy = NULL,
                   initial_sync_completed_at = coalesce(initial_sync_completed_at, now())
             WHERE integration_id = \(bound.id) AND tab = \(chunk.tab.rawValue)
            """)
        try connection.execute("""
            INSERT INTO tandem.events (integration_id, type, tab, payload)
            VALUES (\(bound.id), \(type), \(chunk.tab.rawValue), \(event)::jsonb)
            """)
        events.append(event)
    }
}
