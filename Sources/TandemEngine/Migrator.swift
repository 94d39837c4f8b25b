import TandemCore
import TandemPostgres

/// A numbered, forward-only change to the `tandem` schema (sql/tandem/NNNN_name.sql).
struct Migration: Sendable {
    let version: Int
    let name: String
    let sql: String
}

/// Applies the migrations that a database has not seen yet, each once, all in
/// one transaction under an advisory lock, so that hosts starting together
/// do not race (graphile-worker's and GRDB's way).
enum Migrator {
    /// pg_advisory_xact_lock key: "tand" and "migr" as 32-bit numbers.
    static let lockKey: SQL = "1952804452, 1835624306"

    static var latestVersion: Int { embedded.map(\.version).max() ?? 0 }

    static func migrate(_ connection: Connection) throws {
        try connection.execute("BEGIN")
        do {
            try connection.execute("SELECT pg_advisory_xact_lock(\(lockKey))")
            // CREATE SCHEMA IF NOT EXISTS would need CREATE on the database even
            // when a DBA created the schema for Tandem's role (README, "Roles").
            try connection.execute("DO $$ BEGIN IF to_regnamespace('tandem') IS NULL THEN CREATE SCHEMA tandem; END IF; END $$")
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS tandem.migrations (
                    version    int CONSTRAINT migrations_pk PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """)
            try connection.execute("COMMENT ON TABLE tandem.migrations IS 'Migrations of the tandem schema applied to this database, one row each.'")
            let applied = Set(try connection.execute("SELECT version FROM tandem.migrations").rows.compactMap { $0[0].flatMap { Int($0) } })
            if let newest = applied.max(), newest > latestVersion {
                throw TandemError(.state, "the tandem schema is at migration \(newest), newer than this library knows (\(latestVersion)); upgrade the library")
            }
            for migration in embedded.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
                try connection.executeScript(migration.sql)
                try connection.execute("INSERT INTO tandem.migrations (version, name) VALUES (\(migration.version), \(migration.name))")
            }
            try connection.execute("COMMIT")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
