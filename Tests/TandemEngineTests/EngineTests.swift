import XCTest
@testable import TandemCore
final class Placeholder: XCTestCase { func testNothing() {} }
