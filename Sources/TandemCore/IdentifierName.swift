/// Names of the objects Tandem creates on the apps' tables (match indexes).
///
/// PostgreSQL keeps at most 63 bytes of an identifier (NAMEDATALEN - 1) and
/// cuts the rest without a word, so a name built from long table and column
/// names must be shortened by us: on a Character boundary, so that no UTF-8
/// sequence is ever split (a cut Japanese table name is not valid text), and
/// with a hash of everything it was built from, so that two long names that
/// share their first 63 bytes still get two objects and not one.
public enum IdentifierName {
    /// PostgreSQL's limit on identifiers, in bytes.
    public static let maximumBytes = 63

    /// The name of the expression index that B3 matching probes:
    /// `tandem_match_<table>_<column>_<hash>`, with `<table>_<column>` cut to
    /// fit and `<hash>` twelve hex digits of (schema, table, column).
    public static func matchIndex(schema: String, table: String, column: String) -> String {
        bounded(prefix: "tandem_match_", readable: "\(table)_\(column)", identity: [schema, table, column])
    }

    /// `prefix + readable + "_" + hash(identity)`, at most `maximumBytes`
    /// bytes: the readable part is cut at the last whole Character that fits.
    /// The hash always takes part, so names that would be equal once cut, or
    /// equal only because "_" joins the pieces ("a_b"+"c" and "a"+"b_c"),
    /// differ.
    public static func bounded(prefix: String, readable: String, identity: [String]) -> String {
        let suffix = "_" + hash(identity)
        let room = maximumBytes - prefix.utf8.count - suffix.utf8.count
        var kept = ""
        var used = 0
        for character in readable {
            let size = character.utf8.count
            if used + size > room { break }
            kept.append(character)
            used += size
        }
        return prefix + kept + suffix
    }

    /// Twelve lowercase hex digits of the 64-bit FNV-1a hash of the parts,
    /// each followed by a NUL byte so that ("ab", "c") and ("a", "bc") differ.
    /// Stable across processes and versions, unlike Swift's `Hasher`: the name
    /// of an index made yesterday must be computed the same way today.
    public static func hash(_ parts: [String]) -> String {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 + [0] {
                value ^= UInt64(byte)
                value = value &* 0x0000_0100_0000_01b3
            }
        }
        let hex = String(value, radix: 16)
        let padded = String(repeating: "0", count: max(0, 16 - hex.count)) + hex
        return String(padded.prefix(12))
    }
}
