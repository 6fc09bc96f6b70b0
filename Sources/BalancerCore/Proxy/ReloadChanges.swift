/// What a reload changed, for its log line.
public struct ReloadChanges: Sendable, Equatable, CustomStringConvertible {
    public var servicesAdded = 0
    public var servicesRemoved = 0
    public var endpointsAdded = 0
    public var endpointsRemoved = 0

    public var description: String {
        "services +\(servicesAdded) -\(servicesRemoved), endpoints +\(endpointsAdded) -\(endpointsRemoved)"
    }
}
