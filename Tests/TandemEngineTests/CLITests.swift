import Foundation
import TandemCore
import TandemTestSupport
import XCTest

/// The `tandem` command, run as a user runs it (.build/debug/tandem).
final class CLITests: XCTestCase {
    func testAConfigurationFileThatIsNotUTF8IsRefusedAsTheCABIRefusesIt() throws {
        let cli = repositoryRoot.appendingPathComponent(".build/debug/tandem").path
        guard FileManager.default.fileExists(atPath: cli) else { return XCTFail("build the CLI first: \(cli)") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-not-utf8-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: file) }
        // Valid JSON but for two bytes that are not UTF-8 (issue 8).
        try Data(#"{"integration":"x"#.utf8 + [0xFF, 0xFE] + #"","pipeline":{"acting_user":"a@b"},"crm":{"acting_user":"a@b"}}"#.utf8)
            .write(to: file)
        let expected = TandemError.notUTF8("config_json")
        XCTAssertEqual(expected.message, "config_json is not valid UTF-8", "the C ABI's message for config_json (Exports.swift)")
        for command in ["validate", "configure"] {
            // The file is refused before any connection is tried.
            let result = try TestServer.execute(cli, [command, "--config", file.path, "--database", "host=/nonexistent-tandem-socket-dir"],
                                                timeout: 60)
            XCTAssertEqual(result.status, 79, "\(command): the exit status of TANDEM_MISUSE (README, \"The CLI\"); stderr: \(result.standardError)")
            XCTAssertEqual(result.standardError, "tandem: \(expected.message)\n", command)
        }
    }
}
