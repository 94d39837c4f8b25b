import TandemPostgres

/// Every statement a pass runs for one module, built once when an integration
/// is bound: a pass only sends them.
public struct CompiledModule: Sendable {
    public let compiler: ModuleCompiler
    public let linkedPairs: SQL
    public let clearWork: [SQL]
    public let forgetWaiting: SQL
    public let retryWaiting: SQL
    public let match: [Side: SQL]
    public let prepareCreate: [Side: SQL]
    public let create: [Side: ApplyStatement]
    public let linkCreated: [Side: SQL]
    public let rememberWaitingCreates: [Side: SQL]
    public let buildWork: SQL
    public let workPlan: SQL
    public let recordConflicts: SQL
    public let update: [Side: ApplyStatement]
    public let mirrorUnwritten: SQL
    public let mirrorWritten: SQL
    public let markDeleted: SQL
    public let rememberWaitingPairs: [Side: SQL]
    public let lockRows: [Side: SQL]
    public let deferContended: SQL

    public init(_ compiler: ModuleCompiler) {
        self.compiler = compiler
        linkedPairs = compiler.linkedPairs
        clearWork = compiler.clearWork
        forgetWaiting = compiler.forgetWaiting
        retryWaiting = compiler.retryWaiting
        buildWork = compiler.buildWork
        workPlan = compiler.workPlan
        recordConflicts = compiler.recordConflicts
        mirrorUnwritten = compiler.mirrorUnwritten
        mirrorWritten = compiler.mirrorWritten
        markDeleted = compiler.markDeleted
        deferContended = compiler.deferContended
        lockRows = Dictionary(uniqueKeysWithValues: Side.allCases.map { ($0, compiler.lockRows($0)) })
        var match: [Side: SQL] = [:], prepareCreate: [Side: SQL] = [:], linkCreated: [Side: SQL] = [:]
        var rememberWaitingCreates: [Side: SQL] = [:], rememberWaitingPairs: [Side: SQL] = [:]
        var create: [Side: ApplyStatement] = [:], update: [Side: ApplyStatement] = [:]
        for side in Side.allCases {
            match[side] = compiler.match(from: side)
            prepareCreate[side] = compiler.prepareCreate(from: side)
            create[side] = compiler.create(from: side)
            linkCreated[side] = compiler.linkCreated(from: side)
            rememberWaitingCreates[side] = compiler.rememberWaitingCreates(from: side)
            update[side] = compiler.update(side)
            rememberWaitingPairs[side] = compiler.rememberWaitingPairs(side)
        }
        (self.match, self.prepareCreate, self.linkCreated) = (match, prepareCreate, linkCreated)
        (self.rememberWaitingCreates, self.rememberWaitingPairs) = (rememberWaitingCreates, rememberWaitingPairs)
        (self.create, self.update) = (create, update)
    }

    public var module: Module { compiler.module }
}
