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
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: payloads + index * Self.payloadSize, iov_len: Self.payloadSize)
        }
    }

    deinit {
        payloads.deallocate()
        messages.deallocate()
        vectors.deallocate()
        names.deallocate()
        controls.deallocate()
    }

    /// Receives what `fd` holds, up to `capacity` datagrams: `.done(n)` with n ≥ 1, or
    /// `.wouldBlock` when nothing is waiting.
    public func receive(from fd: Int32) throws(SystemError) -> IOResult<Int> {
        for index in 0..<capacity {
            vectors[index].iov_len = Self.payloadSize
            messages[index] = cev_mmsghdr(
                msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(names + index), msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                                msg_iov: vectors + index, msg_iovlen: 1,
                                msg_control: controls + index * controlSize, msg_controllen: controlSize, msg_flags: 0),
                msg_len: 0)
        }
        let result = try syscall("recvmmsg") { cev_recvmmsg(fd, messages, UInt32(capacity), Int32(MSG_DONTWAIT)) }
        if case .done(let received) = result {
            count = Int(received)
            return .done(Int(received))
        }
        count = 0
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

    /// Sends payloads `0..<count` (as received) on `fd` to `destination`, from `source` when
    /// set (the local address the client used). Returns how many the kernel took; the rest
    /// would have blocked and are the caller's to drop.
    public func send(_ count: Int, on fd: Int32, to destination: DatagramAddress, from source: DatagramAddress?) throws(SystemError) -> Int {
        guard count > 0 else { return 0 }
        // One name and one control message serve every datagram of the batch.
        let nameLength = destination.write(to: names)
        var controlLength = 0
        if let source {
            let data = controls
            data.initializeMemory(as: UInt8.self, repeating: 0, count: controlSize)
            let header = data.assumingMemoryBound(to: cmsghdr.self)
            if source.isIPv6 {
                header.pointee.cmsg_level = Int32(IPPROTO_IPV6)
                header.pointee.cmsg_type = CEV_IPV6_PKTINFO
                header.pointee.cmsg_len = cev_cmsg_len(cev_in6_pktinfo_size())
                controlLength = cev_cmsg_space(cev_in6_pktinfo_size())
                cev_in6_pktinfo_set_source(cev_cmsg_data(header), source.ipv6)
            } else {
                header.pointee.cmsg_level = Int32(IPPROTO_IP)
                header.pointee.cmsg_type = CEV_IP_PKTINFO
                header.pointee.cmsg_len = cev_cmsg_len(cev_in_pktinfo_size())
                controlLength = cev_cmsg_space(cev_in_pktinfo_size())
                cev_in_pktinfo_set_source(cev_cmsg_data(header), source.ipv4)
            }
        }
        for index in 0..<count {
            vectors[index].iov_len = Int(messages[index].msg_len)
            messages[index].msg_hdr = msghdr(msg_name: UnsafeMutableRawPointer(names), msg_namelen: nameLength,
                                             msg_iov: vectors + index, msg_iovlen: 1,
                                             msg_control: controlLength > 0 ? controls : nil, msg_controllen: controlLength, msg_flags: 0)
        }
        var sent = 0
        while sent < count {
            let result = try syscall("sendmmsg") { cev_sendmmsg(fd, messages + sent, UInt32(count - sent), Int32(MSG_DONTWAIT)) }
            guard case .done(let taken) = result, taken > 0 else { break }
            sent += Int(taken)
        }
        return sent
    }
}
