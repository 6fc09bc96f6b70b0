import Foundation

/// Carries out the admin port's runtime commands on the main loop, and keeps what they set
/// (`RuntimeOverrides`), with `admin.stateFile`, on disk.
///
/// A state or weight command does not touch the running services itself: it changes the
/// overrides, and the daemon applies its service map again, through the one path a reload
/// and a DNS change take (`ServiceMap.materialize`, then `Workers.apply`).
final class RuntimeController {
    private(set) var overrides = RuntimeOverrides()
    /// `admin.stateFile` in force.
    private(set) var stateFile: String?
    /// The services in force, the service map applied again, and the close of one
    /// endpoint's connections on every worker: set by the daemon once they exist.
    var services: () -> [Service] = { [] }
    var reapply: () -> Void = {}
    var closeSessions: (Service, Endpoint) -> Void = { _, _ in }

    /// Reads `stateFile`, if any. A missing file is a first start; one that cannot be read
    /// or decoded is logged and ignored: a daemon must start whatever the file holds.
    init(stateFile: String?) {
        self.stateFile = stateFile
        guard let stateFile, FileManager.default.fileExists(atPath: stateFile) else { return }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: stateFile))
            overrides = try RuntimeOverrides.decode(data)
            if !overrides.entries.isEmpty {
                Log.notice("admin.stateFile \(stateFile): \(overrides.entries.count) endpoint override(s) restored")
            }
        } catch let error as RuntimeOverrides.DecodeError {
            Log.error("admin.stateFile \(stateFile): ignored: \(error)")
        } catch {
            Log.error("admin.stateFile \(stateFile): ignored: cannot read: \((error as NSError).localizedFailureReason ?? "\(error)")")
        }
    }

    /// The overrides, encoded, for a process taking over.
    var encodedOverrides: [UInt8] { Array(overrides.encoded()) }

    /// Takes the overrides a takeover carried (they win over the state file's: they are
    /// what was in force a moment ago).
    func adopt(encoded bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        do {
            overrides = try RuntimeOverrides.decode(Data(bytes))
            save()
        } catch {
            Log.error("takeover: the runtime overrides handed over were ignored: \(error)")
        }
    }

    func perform(_ command: RuntimeCommand) -> RuntimeCommand.Outcome {
        guard let service = services().first(where: { $0.name == command.service }) else { return .unknownService }
        guard let endpoint = Self.find(command.address, in: service) else { return .unknownEndpoint }
        let key = RuntimeOverrides.Key(service: service.name, address: endpoint.address.description)
        let label = "service \(service.name): endpoint \(endpoint.address)"
        switch command.action {
        case .state(let state):
            overrides.set(state: state, for: key)
            Log.notice("admin: \(label) set to \(state.rawValue)")
        case .weight(let weight):
            overrides.set(weight: weight, for: key)
            Log.notice("admin: \(label) weight set to \(weight)")
        case .close:
            Log.notice("admin: \(label): closing its open connections")
            closeSessions(service, endpoint)
        }
        if command.action != .close {
            save()
            reapply()
        }
        guard let entry = service.snapshot().endpoints.first(where: { $0.config.address == endpoint.address }) else { return .unknownEndpoint }
        return .done(endpointJSON: StatsRenderer.endpointJSON(entry))
    }

    /// The endpoint `address` names: as `/stats` shows it, or any spelling of its ip:port.
    private static func find(_ address: String, in service: Service) -> Endpoint? {
        let canonical = RuntimeOverrides.canonicalAddress(address)
        // The main thread alone replaces endpoint configurations, so reading them here is safe.
        return service.endpoints.first { $0.config.name == address || $0.address.description == canonical }
    }

    /// After a new service map is in force: forgets the entries of endpoints that went, and
    /// follows a changed `admin.stateFile`.
    func mapApplied(_ map: Config, answers: [DNSName.Query: DNSRecordSet]) {
        let kept = overrides.retained(in: map, answers: answers)
        let moved = map.admin.stateFile != stateFile
        stateFile = map.admin.stateFile
        guard kept != overrides || moved else { return }
        if kept != overrides {
            Log.info("admin: \(overrides.entries.count - kept.entries.count) override(s) of endpoints that went forgotten")
        }
        overrides = kept
        save()
    }

    /// Writes the overrides to the state file: a temporary file renamed over it, so that a
    /// crash leaves the old file or the new one, never half of one.
    private func save() {
        guard let stateFile else { return }
        do {
            try overrides.encoded().write(to: URL(fileURLWithPath: stateFile), options: .atomic)
        } catch {
            Log.error("admin.stateFile \(stateFile): cannot write: \((error as NSError).localizedFailureReason ?? "\(error)")")
        }
    }
}
