import Foundation
import Testing

/// The Debian package `scripts/package.sh` builds, as an operator meets it: its fields and
/// files, lintian, the man pages, and in a throwaway root (`scripts/lib/sandbox.sh`: an
/// overlay of this machine's `/` with the Swift toolchain hidden) install, upgrade, remove
/// and purge with the installed daemon run.
///
/// `scripts/test.sh` builds the package once before `swift test` and names it in
/// `BALANCERD_DEB`; without that, the suite runs `scripts/package.sh` itself (into a folder
/// of its own, reusing the release build in `.build-package` if there is one), so run alone
/// it skips nothing, it only takes the release build's minutes first.
@Suite(.serialized) struct PackageEndToEndTests {
    /// The package, built once for the suite, and unpacked.
    struct Built: Sendable {
        let deb: String
        let directory: URL
        /// `dpkg-deb -x`: the files as installed.
        var files: URL { directory.appendingPathComponent("files") }
        /// `dpkg-deb -e`: the control files and maintainer scripts.
        var control: URL { directory.appendingPathComponent("control") }

        static func make() throws -> Built {
            let directory = Harness.temporaryDirectory()
            var deb = ProcessInfo.processInfo.environment["BALANCERD_DEB"] ?? ""
            if deb.isEmpty {
                let script = Harness.repositoryRoot.appendingPathComponent("scripts/package.sh").path
                let outcome = try shell("'\(script)' --no-lintian --output '\(directory.path)/dist'", timeout: 1200)
                deb = outcome.stdout.split(separator: "\n").last.map(String.init) ?? ""
                guard outcome.status == 0 else {
                    throw HarnessError("scripts/package.sh failed (\(outcome.status)): \(outcome.stderr.suffix(3000))")
                }
            }
            guard FileManager.default.fileExists(atPath: deb) else { throw HarnessError("no package at '\(deb)'") }
            let built = Built(deb: deb, directory: directory)
            let unpack = try shell("dpkg-deb -x '\(deb)' '\(built.files.path)' && dpkg-deb -e '\(deb)' '\(built.control.path)'", timeout: 120)
            guard unpack.status == 0 else { throw HarnessError("dpkg-deb: \(unpack.stderr)") }
            return built
        }
    }

    static let built = Result { try Built.make() }

    /// Runs `script` with bash for at most `timeout` seconds, its output through files so
    /// that no amount of it can fill a pipe.
    static func shell(_ script: String, timeout: Double) throws -> Program.Outcome {
        let directory = Harness.temporaryDirectory()
        let out = directory.appendingPathComponent("stdout").path
        let err = directory.appendingPathComponent("stderr").path
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try Program.run("/bin/bash", ["-c", "exec >'\(out)' 2>'\(err)'\n" + script], timeout: timeout)
        return Program.Outcome(status: outcome.status,
                               stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                               stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// The version the daemon under test reports, as the package must be named.
    static func version() throws -> String {
        let outcome = try Program.run(Harness.balancerd, ["--version"])
        return outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "balancerd ", with: "")
    }

    @Test func package_isNamedForTheVersion_dependsOnWhatItLinks_andHoldsTheUnitsConfigAndManPages() throws {
        let built = try Self.built.get()
        let arch = try Self.shell("dpkg --print-architecture", timeout: 10).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((built.deb as NSString).lastPathComponent == "balancerd_\(try Self.version())_\(arch).deb")

        let depends = try Self.shell("dpkg-deb -f '\(built.deb)' Depends", timeout: 30).stdout
        // dpkg-shlibdeps' answer for the shared libraries linked; no Swift runtime among them.
        for package in ["adduser", "libc6", "libev4", "libhttp-parser2.9", "libc-ares2", "libcurl4"] {
            #expect(depends.contains(package), "Depends lacks \(package): \(depends)")
        }
        #expect(!depends.lowercased().contains("swift"))

        let files = built.files
        for path in ["usr/bin/balancerd", "usr/bin/balancerctl", "lib/systemd/system/balancerd.service",
                     "lib/systemd/system/balancerd.socket", "etc/balancerd/balancerd.yaml",
                     "usr/share/man/man8/balancerd.8.gz", "usr/share/man/man8/balancerctl.8.gz",
                     "usr/share/man/man5/balancerd.yaml.5.gz", "usr/share/doc/balancerd/copyright",
                     "usr/share/doc/balancerd/changelog.gz"] {
            #expect(FileManager.default.fileExists(atPath: files.appendingPathComponent(path).path), "the package lacks \(path)")
        }
        let conffiles = try String(contentsOf: built.control.appendingPathComponent("conffiles"), encoding: .utf8)
        #expect(conffiles == "/etc/balancerd/balancerd.yaml\n")
        let shipped = try String(contentsOf: files.appendingPathComponent("etc/balancerd/balancerd.yaml"), encoding: .utf8)
        let reference = try String(contentsOf: Harness.repositoryRoot.appendingPathComponent("config/balancerd.yaml"), encoding: .utf8)
        #expect(shipped == reference)

        let unit = try String(contentsOf: files.appendingPathComponent("lib/systemd/system/balancerd.service"), encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/bin/balancerd --config /etc/balancerd/balancerd.yaml\n"))
        #expect(unit.contains("\nExecStartPre=/usr/bin/balancerd --check-config --config /etc/balancerd/balancerd.yaml\n"))
        #expect(unit.contains("\nUser=balancerd\nGroup=balancerd\n"))
        #expect(unit.contains("\nDocumentation=man:balancerd(8) man:balancerd.yaml(5)\n"))
        #expect(!unit.contains("DynamicUser") && !unit.contains("/usr/local"))

        // The Swift runtime is inside the binaries.
        let ldd = try Self.shell("ldd '\(files.path)/usr/bin/balancerd' '\(files.path)/usr/bin/balancerctl'", timeout: 30).stdout
        for library in ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "/opt/swift", "not found"] {
            #expect(!ldd.contains(library), "ldd shows \(library): \(ldd)")
        }
    }

    @Test func lintian_findsNoErrorAndNoWarning() throws {
        let built = try Self.built.get()
        let outcome = try Self.shell("lintian --fail-on error '\(built.deb)'", timeout: 600)
        #expect(outcome.status == 0, "lintian: \(outcome.stdout)\(outcome.stderr)")
        let findings = outcome.stdout.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
        #expect(findings.isEmpty, "lintian: \(findings.joined(separator: "\n"))")
    }

    @Test func manPages_renderWithoutWarnings_andCoverEveryFlagCommandAndKey() throws {
        let built = try Self.built.get()
        let man = built.files.appendingPathComponent("usr/share/man")
        var pages: [String: String] = [:]
        for page in ["man8/balancerd.8", "man8/balancerctl.8", "man5/balancerd.yaml.5"] {
            let path = man.appendingPathComponent(page + ".gz").path
            let groff = try Self.shell("zcat '\(path)' | LC_ALL=C.UTF-8 groff -ww -man -Tutf8 -z", timeout: 30)
            #expect(groff.status == 0 && groff.stderr.isEmpty, "groff -ww on \(page): \(groff.stderr)")
            let rendered = try Self.shell("LC_ALL=C.UTF-8 MANWIDTH=80 man -l '\(path)'", timeout: 30)
            #expect(rendered.status == 0 && rendered.stderr.isEmpty, "man -l \(page): \(rendered.stderr)")
            #expect(rendered.stdout.contains("NAME"))
            pages[page] = try Self.shell("zcat '\(path)'", timeout: 10).stdout
        }

        // Every flag of the daemon's --help, in roff's spelling (\-\-check\-config).
        let help = try Program.run(Harness.balancerd, ["--help"]).stdout
        let flags = Set(help.matches(of: #/--[a-z][a-z-]*/#).map { String($0.output) })
        #expect(flags.isSuperset(of: ["--config", "--check-config", "--log-level", "--version", "--help"]))
        for flag in flags {
            #expect(pages["man8/balancerd.8"]?.contains(flag.replacingOccurrences(of: "-", with: "\\-")) == true, "balancerd(8) lacks \(flag)")
        }

        // Every subcommand of balancerctl's --help.
        let ctlHelp = try Program.run(Harness.balancerctl, ["--help"]).stdout
        let commands = ctlHelp.components(separatedBy: "SUBCOMMANDS:").last?.split(separator: "\n")
            .compactMap { $0.wholeMatch(of: #/  ([a-z]+) .*/#)?.output.1 }.map(String.init) ?? []
        #expect(commands.count >= 6)
        for command in commands {
            #expect(pages["man8/balancerctl.8"]?.contains(".B \(command)\n") == true, "balancerctl(8) lacks \(command)")
        }

        // Every key the loader accepts has its entry: config/balancerd.yaml, the page's
        // source, cannot leave one out.
        let loader = try String(contentsOf: Harness.repositoryRoot.appendingPathComponent("Sources/BalancerCore/Config/ConfigLoader.swift"), encoding: .utf8)
        var keys = Set<String>()
        for list in loader.matches(of: /(?:allowed(?:: \[String\])? *[:=]|timingKeys =) *\[([^\]]*)\]/) {
            keys.formUnion(list.output.1.matches(of: /"([A-Za-z]+)"/).map { String($0.output.1) })
        }
        #expect(keys.count >= 35, "keys found in ConfigLoader.swift: \(keys.sorted())")
        let yamlPage = pages["man5/balancerd.yaml.5"] ?? ""
        for key in keys {
            // A part of an entry's path: `\fBdiscovery.etcd.prefix\fR`, `\fBservices[].name\fR`.
            let named = ["\\fB", "."].contains { before in [".", "[]", "\\fR"].contains { yamlPage.contains(before + key + $0) } }
            #expect(named, "balancerd.yaml(5) has no entry for \(key)")
        }
    }

    @Test func installedInAThrowawayRoot_runs_isEnabledNotStarted_upgradesKeepingTheConfig_andPurgeLeavesOnlyTheUser() throws {
        let built = try Self.built.get()
        let state = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let name = (built.deb as NSString).lastPathComponent
        try FileManager.default.createDirectory(at: state.appendingPathComponent("in"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: built.deb, toPath: state.appendingPathComponent("in/\(name)").path)
        let sandbox = Harness.repositoryRoot.appendingPathComponent("scripts/lib/sandbox.sh").path
        func inside(_ script: String, timeout: Double = 120) throws -> Program.Outcome {
            let quoted = "'" + script.replacingOccurrences(of: "'", with: "'\\''") + "'"
            return try Self.shell("'\(sandbox)' '\(state.path)' /bin/sh -c \(quoted)", timeout: timeout)
        }

        // As if systemd ran (/run/systemd/system), with systemctl and deb-systemd-invoke
        // logging what the maintainer scripts ask of them; systemctl's offline work
        // (--root, as deb-systemd-helper uses it to enable) still runs for real.
        let setup = try inside("""
            mkdir -p /run/systemd/system /usr/local/sbin
            for c in systemctl deb-systemd-invoke; do
                printf '#!/bin/sh\\necho "$(basename "$0") $*" >> /var/log/calls\\ncase "$*" in --root=*) exec /bin/systemctl "$@";; esac\\n' > /usr/local/sbin/$c
                chmod 0755 /usr/local/sbin/$c
            done
            """)
        #expect(setup.status == 0, "\(setup.stderr)")
        let calls = { (try? inside("cat /var/log/calls; : > /var/log/calls").stdout) ?? "" }

        let install = try inside("dpkg -i /mnt/in/\(name)")
        #expect(install.status == 0, "dpkg -i: \(install.stdout)\(install.stderr)")
        let installCalls = calls()
        #expect(installCalls.contains("systemctl --system daemon-reload"))
        #expect(!installCalls.contains("deb-systemd-invoke") && !installCalls.contains(" start") && !installCalls.contains("restart"),
                "a first install must not start the service: \(installCalls)")
        #expect(try inside("test -L /etc/systemd/system/multi-user.target.wants/balancerd.service").status == 0, "not enabled")

        // The installed programs, with no toolchain to lean on.
        #expect(try inside("test ! -e /opt/swift/usr/bin/swift").status == 0)
        #expect(try inside("balancerd --version").stdout == "balancerd \(try Self.version())\n")
        let check = try inside("balancerd --check-config --config /etc/balancerd/balancerd.yaml")
        #expect(check.status == 0, "\(check.stderr)")
        // The shipped example: every service of config/balancerd.yaml.
        #expect(check.stdout.hasPrefix("configuration OK: 6 services"))
        #expect(try inside("balancerctl --help").status == 0)
        let ldd = try inside("ldd /usr/bin/balancerd /usr/bin/balancerctl").stdout
        #expect(!ldd.contains("not found") && !ldd.contains("libswift") && !ldd.contains("libFoundation"), "\(ldd)")
        let user = try inside("getent passwd balancerd").stdout
        #expect(user.hasSuffix(":/nonexistent:/usr/sbin/nologin\n"), "balancerd user: \(user)")
        #expect(try inside("man -w balancerd.yaml").stdout == "/usr/share/man/man5/balancerd.yaml.5.gz\n")
        let verify = try inside("systemd-analyze verify /lib/systemd/system/balancerd.service /lib/systemd/system/balancerd.socket", timeout: 60)
        #expect(verify.status == 0 && verify.stdout.isEmpty && verify.stderr.isEmpty,
                "systemd-analyze verify: \(verify.stdout)\(verify.stderr)")

        // An upgrade (the same version again counts as one) restarts only a running service
        // and keeps an edited conffile.
        #expect(try inside("echo '# mine' >> /etc/balancerd/balancerd.yaml").status == 0)
        let upgrade = try inside("dpkg -i /mnt/in/\(name)")
        #expect(upgrade.status == 0, "dpkg -i again: \(upgrade.stderr)")
        let upgradeCalls = calls()
        #expect(upgradeCalls.contains("deb-systemd-invoke try-restart balancerd.service"), "\(upgradeCalls)")
        #expect(!upgradeCalls.contains(" start") && !upgradeCalls.contains(" restart"), "\(upgradeCalls)")
        #expect(try inside("tail -n 1 /etc/balancerd/balancerd.yaml").stdout == "# mine\n")

        // Remove stops it and keeps the configuration; purge takes that too.
        let remove = try inside("dpkg -r balancerd")
        #expect(remove.status == 0, "dpkg -r: \(remove.stderr)")
        #expect(calls().contains("deb-systemd-invoke stop balancerd.service"))
        #expect(try inside("test ! -e /usr/bin/balancerd && test -e /etc/balancerd/balancerd.yaml").status == 0)
        let purge = try inside("dpkg --purge balancerd")
        #expect(purge.status == 0, "dpkg --purge: \(purge.stderr)")

        // What is left is in the overlay's upper layer: dpkg's own records and logs, caches,
        // the test's stubs, and the balancerd system user (Debian's packages keep theirs).
        let upper = state.appendingPathComponent("upper")
        let kept = ["etc/passwd", "etc/passwd-", "etc/group", "etc/group-", "etc/shadow", "etc/shadow-",
                    "etc/gshadow", "etc/gshadow-", "etc/.pwd.lock"]
        let keptFolders = ["var/lib/dpkg/", "var/log/", "var/cache/", "run/", "usr/local/sbin/"]
        var left: [String] = []
        let walker = FileManager.default.enumerator(atPath: upper.path)
        while let path = walker?.nextObject() as? String {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: upper.appendingPathComponent(path).path, isDirectory: &isFolder)
            // man-db's formatted pages are a cache that its daily mandb run cleans.
            let named = path.contains("balancerd") && !path.hasPrefix("var/lib/dpkg/") && !path.hasPrefix("var/cache/man/")
            let expected = kept.contains(path) || keptFolders.contains { path.hasPrefix($0) }
            if named || (!isFolder.boolValue && !expected) { left.append(path) }
        }
        #expect(left.isEmpty, "purge left: \(left.sorted())")
        #expect(try inside("test ! -e /etc/balancerd && test ! -e /lib/systemd/system/balancerd.service").status == 0)
        #expect(try inside("getent passwd balancerd").status == 0)
    }
}

/// deploy/kubernetes against the Kubernetes API schema, offline (scripts/check-manifests.py).
@Suite struct KubernetesManifestTests {
    @Test func manifests_passTheStrictSchemaAndTheDaemonSetRules_andTheConfigMapsConfigValidates() throws {
        let directory = Harness.temporaryDirectory()
        let config = directory.appendingPathComponent("balancerd.yaml").path
        let script = Harness.repositoryRoot.appendingPathComponent("scripts/check-manifests.py").path
        let outcome = try Program.run("/usr/bin/env", ["python3", script, "--config-out", config], timeout: 120)
        #expect(outcome.status == 0, "\(outcome.stdout)\(outcome.stderr)")
        #expect(!outcome.stdout.contains("FAILED"))
        #expect(outcome.stdout.split(separator: "\n").filter { $0.hasPrefix("ok: ") && $0.contains("schema (strict)") }.count >= 4)
        let check = try Program.run(Harness.balancerd, ["--check-config", "--config", config])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.hasPrefix("configuration OK: 1 service"))
    }

    @Test func manifests_withAMisspeltField_fail() throws {
        let directory = Harness.temporaryDirectory()
        let source = Harness.repositoryRoot.appendingPathComponent("deploy/kubernetes")
        for file in ["configmap.yaml", "daemonset.yaml"] {
            let text = try String(contentsOf: source.appendingPathComponent(file), encoding: .utf8)
            try text.replacingOccurrences(of: "hostNetwork:", with: "hostNetwrk:")
                .write(to: directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        let script = Harness.repositoryRoot.appendingPathComponent("scripts/check-manifests.py").path
        let outcome = try Program.run("/usr/bin/env", ["python3", script, directory.path], timeout: 120)
        #expect(outcome.status == 1)
        #expect(outcome.stdout.contains("FAILED: daemonset.yaml DaemonSet/balancerd against the Kubernetes"))
        #expect(outcome.stdout.contains("'hostNetwrk' was unexpected"))
    }
}
