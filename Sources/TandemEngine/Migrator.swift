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
///
/// An applied migration is never edited: the schema it made is already in
/// databases, and an edit would reach only new ones. Each applied migration's
/// SHA-256 is recorded with it, and a database whose applied text differs
/// from this library's is refused, so that such an edit shows at once.
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
            // Databases made before checksums were kept get the column here;
            // their rows are filled in below from this library's text.
            try connection.execute("ALTER TABLE tandem.migrations ADD COLUMN IF NOT EXISTS checksum text")
            try connection.execute("COMMENT ON COLUMN tandem.migrations.checksum IS 'SHA-256 (hex) of the migration''s text as applied; the library refuses a database whose applied text differs from its own.'")
            var applied: [Int: (name: String, checksum: String?)] = [:]
            for row in try connection.execute("SELECT version, name, checksum FROM tandem.migrations").rows {
                guard let version = row[0].flatMap({ Int($0) }) else { continue }
                applied[version] = (row[1] ?? "", row[2])
            }
            if let newest = applied.keys.max(), newest > latestVersion {
                throw TandemError(.state, "the tandem schema is at migration \(newest), newer than this library knows (\(latestVersion)); upgrade the library", extended: ExtendedCode.stateSchemaVersion)
            }
            for migration in embedded.sorted(by: { $0.version < $1.version }) {
                let checksum = try self.checksum(of: migration, on: connection)
                guard let recorded = applied[migration.version] else {
                    try connection.executeScript(migration.sql)
                    try connection.execute("INSERT INTO tandem.migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(checksum))")
                    continue
                }
                guard let stored = recorded.checksum else {
                    try connection.execute("UPDATE tandem.migrations SET checksum = \(checksum) WHERE version = \(migration.version)")
                    continue
                }
                if stored != checksum || recorded.name != migration.name {
                    throw TandemError(.state, """
                        migration \(recorded.name) (version \(migration.version)) was applied to this database with a text that \
                        differs from this library's \(migration.name) (checksum \(stored.prefix(12)) applied, \(checksum.prefix(12)) \
                        in the library): applied migrations are never edited; use the library the database was installed with, \
                        or add the change as a new migration
                        """, extended: ExtendedCode.stateSchemaVersion)
                }
            }
            try connection.execute("COMMIT")
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// SHA-256 of the migration's text, computed by the server that applies it.
    static func checksum(of migration: Migration, on connection: Connection) throws -> String {
        guard let checksum = try connection.execute("SELECT encode(sha256(convert_to(\(migration.sql), 'UTF8')), 'hex')").scalar else {
            throw TandemError(.database, "the server returned no checksum for migration \(migration.name)")
        }
        return checksum
    }
}
