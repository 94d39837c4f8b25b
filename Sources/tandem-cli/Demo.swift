import Foundation
import TandemEngine

struct Demo {
    let conninfo: String
    let follow: Bool
    func run() throws {}
}
