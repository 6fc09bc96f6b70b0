import CEv
import Glibc

/// Buffers for up to `capacity` datagrams, received with one `recvmmsg` and sent with one
/// `sendmmsg`: allocated once per worker, so that relaying a datagram allocates nothing.
///
/// Each slot holds a payload of up to 64 KiB (the largest UDP datagram is 65,507 bytes),
/// the peer's address and a control buffer for the datagram's local address (IP_PKTINFO /
/// IPV6_PKTINFO), which tells a socket bound to a wildcard address which of the host's
/// addresses the client sent to, and sends the reply from it.
public final class DatagramBatch {
    public static let payloadSize = 65_536
    public let capacity: Int
    private let payloads: UnsafeMutableRawPointer
    private let messages: UnsafeMutablePointer<cev_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let controls: UnsafeMutableRawPointer
    private let controlSize: Int
    private let sentFlags: UnsafeMutablePointer<Bool>
    /// Datagrams received by the last `receive`.
    public private(set) var count = 0

    public init(capacity: Int) {
        self.capacity = capacity
        payloads = .allocate(byteCount: capacity * Self.payloadSize, alignment: 16)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        controlSize = cev_cmsg_space(max(cev_in_pktinfo_size(), cev_in6_pktinfo_size())) + 16
        controls = .allocate(byteCount: capacity * controlSize, alignment: 16)
        sentFlags = .allocate(capacity: capacity)
        sentFlags.initialize(repeating: false, count: capacity)
        // Each slot's name, vector and control buffer stay where they are for the batch's
        // life: a receive or a send resets only the lengths and flags.
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: payloads + index * Self.payloadSize, iov_len: Self.payloadSize)
            messages[index] = cev_mmsghdr(
                msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(names + index), msg_namelen: 0,
                                msg_iov: vectors + index, msg_iovlen: 1,
                                msg_control: controls + index * controlSize, msg_controllen: 0, msg_flags: 0),
                msg_len: 0)
        }
    }

    deinit {
        payloads.deallocate()
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
        controls.deallocate()
        sentFlags.deallocate()
    }

    /// Receives what `fd` holds into slots `start..<capacity`: `.done(n)` with n ≥ 1
    /// (slots `start..<start + n`), or `.wouldBlock` when nothing is waiting.
    public func receive(from fd: Int32, into start: Int = 0) throws(SystemError) -> IOResult<Int> {
        let room = capacity - start
        guard room > 0 else { return .wouldBlock }
        for index in start..<capacity {
            vectors[index].iov_len = Self.payloadSize
            messages[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            messages[index].msg_hdr.msg_controllen = controlSize
            messages[index].msg_hdr.msg_flags = 0
        }
        let result = try syscall("recvmmsg") { cev_recvmmsg(fd, messages + start, UInt32(room), Int32(MSG_DONTWAIT)) }
        if case .done(let received) = result {
            count = start + Int(received)
            return .done(Int(received))
        }
        count = start
        return .wouldBlock
    }

    /// The payload of datagram `index`.
    @inline(__always)
    public func payload(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: payloads + index * Self.payloadSize, count: Int(messages[index].msg_len))
    }

    /// Who sent datagram `index`.
    public func peer(_ index: Int) -> DatagramAddress? {
        DatagramAddress(sockaddr: UnsafeRawPointer(names + index))
    }

    /// The local address datagram `index` was sent to (port 0), when the socket asked for it.
    public func local(_ index: Int) -> DatagramAddress? {
        var header = messages[index].msg_hdr
        var message = cev_cmsg_firsthdr(&header)
        while let control = message {
            let level = control.pointee.cmsg_level, type = control.pointee.cmsg_type
            if level == Int32(IPPROTO_IP) && type == CEV_IP_PKTINFO {
                return DatagramAddress(ipv4: cev_in_pktinfo_destination(cev_cmsg_data(control)))
            }
            if level == Int32(IPPROTO_IPV6) && type == CEV_IPV6_PKTINFO {
                return DatagramAddress(ipv6: cev_in6_pktinfo_destination(cev_cmsg_data(control)))
            }
            message = cev_cmsg_nxthdr(&header, control)
        }
        return nil
    }

    /// Addresses the datagram in slot `index` (its payload as received) to `destination`,
    /// from `source` when set (the local address the client used), for `send`.
    public func address(_ index: Int, to destination: DatagramAddress, from source: DatagramAddress?) {
        vectors[index].iov_len = Int(messages[index].msg_len)
        messages[index].msg_hdr.msg_namelen = destination.write(to: names + index)
        messages[index].msg_hdr.msg_flags = 0
        guard let source else {
            messages[index].msg_hdr.msg_controllen = 0
            return
        }
        let data = controls + index * controlSize
        data.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
        let header = data.assumingMemoryBound(to: cmsghdr.self)
        if source.isIPv6 {
            header.pointee.cmsg_level = Int32(IPPROTO_IPV6)
            header.pointee.cmsg_type = CEV_IPV6_PKTINFO
            header.pointee.cmsg_len = cev_cmsg_len(cev_in6_pktinfo_size())
            messages[index].msg_hdr.msg_controllen = cev_cmsg_space(cev_in6_pktinfo_size())
            cev_in6_pktinfo_set_source(cev_cmsg_data(header), source.ipv6)
        } else {
            header.pointee.cmsg_level = Int32(IPPROTO_IP)
            header.pointee.cmsg_type = CEV_IP_PKTINFO
            header.pointee.cmsg_len = cev_cmsg_len(cev_in_pktinfo_size())
            messages[index].msg_hdr.msg_controllen = cev_cmsg_space(cev_in_pktinfo_size())
            cev_in_pktinfo_set_source(cev_cmsg_data(header), source.ipv4)
        }
    }

    /// Sends slots `0..<count`, each as `address` set it, on `fd`, and returns how many the
    /// kernel took; `taken(index)` says which. It stops at the first that would block (the
    /// rest are the caller's to drop); one the kernel refuses (say, a destination it cannot
    /// route) is skipped, so that it costs the batch only itself.
    public func send(_ count: Int, on fd: Int32) -> Int {
        sentFlags.update(repeating: false, count: count)
        var next = 0, taken = 0
        while next < count {
            do throws(SystemError) {
                let result = try syscall("sendmmsg") { cev_sendmmsg(fd, messages + next, UInt32(count - next), Int32(MSG_DONTWAIT)) }
                guard case .done(let accepted) = result, accepted > 0 else { break }
                (sentFlags + next).update(repeating: true, count: Int(accepted))
                next += Int(accepted)
                taken += Int(accepted)
            } catch {
                next += 1
            }
        }
        return taken
    }

    /// Whether the last `send` got slot `index` out.
    @inline(__always)
    public func taken(_ index: Int) -> Bool { sentFlags[index] }
}
