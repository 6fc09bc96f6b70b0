/// The version `--version` prints and `/stats` reports.
public enum BalancerVersion {
    public static let string = "0.1.0"
}
