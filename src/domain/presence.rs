//! Devices and the multi-device policy: which existing devices a new login displaces.

use crate::config::MultiDevicePolicy;
use crate::protocol::wire::ClientType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformClass {
    Mobile,
    Desktop,
    Web,
    /// Backends and unknown clients: a class of their own.
    Other,
}

pub fn class_of(t: ClientType) -> PlatformClass {
    match t {
        ClientType::Ios | ClientType::Android | ClientType::Ipad => PlatformClass::Mobile,
        ClientType::Windows | ClientType::Mac | ClientType::Linux => PlatformClass::Desktop,
        ClientType::Web | ClientType::MiniProgram => PlatformClass::Web,
        _ => PlatformClass::Other,
    }
}

/// What the policy needs to know about one logged-in device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceView<'a> {
    pub client_type: ClientType,
    pub device_id: &'a str,
    pub login_ms: u64,
}

/// Indexes into `existing` of the devices a new login displaces. The same device id
/// logging in again always replaces its old connection (a reconnect).
pub fn devices_to_kick(
    policy: MultiDevicePolicy,
    max_devices: usize,
    existing: &[DeviceView<'_>],
    new: DeviceView<'_>,
) -> Vec<usize> {
    let new_class = class_of(new.client_type);
    let mut kick: Vec<usize> = existing
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            let same_device = !new.device_id.is_empty() && d.device_id == new.device_id;
            let clash = match policy {
                MultiDevicePolicy::Any => false,
                MultiDevicePolicy::OnePerClass => class_of(d.client_type) == new_class,
                MultiDevicePolicy::OneMobileOneDesktop => {
                    (class_of(d.client_type) == PlatformClass::Mobile) == (new_class == PlatformClass::Mobile)
                }
                MultiDevicePolicy::Single => true,
            };
            same_device || clash
        })
        .map(|(i, _)| i)
        .collect();
    // Beyond the per-user cap, the oldest devices go first.
    let remaining = existing.len() - kick.len();
    if remaining + 1 > max_devices.max(1) {
        let mut rest: Vec<usize> = (0..existing.len()).filter(|i| !kick.contains(i)).collect();
        rest.sort_by_key(|&i| existing[i].login_ms);
        let excess = remaining + 1 - max_devices.max(1);
        kick.extend(rest.into_iter().take(excess));
    }
    kick.sort_unstable();
    kick
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(t: ClientType, id: &'static str, at: u64) -> DeviceView<'static> {
        DeviceView { client_type: t, device_id: id, login_ms: at }
    }

    #[test]
    fn policies() {
        let have = [d(ClientType::Ios, "p", 1), d(ClientType::Windows, "w", 2), d(ClientType::Web, "b", 3)];
        use MultiDevicePolicy::*;
        assert_eq!(devices_to_kick(Any, 10, &have, d(ClientType::Android, "a", 4)), Vec::<usize>::new());
        assert_eq!(devices_to_kick(OnePerClass, 10, &have, d(ClientType::Android, "a", 4)), vec![0]);
        assert_eq!(devices_to_kick(OnePerClass, 10, &have, d(ClientType::Mac, "m", 4)), vec![1]);
        assert_eq!(devices_to_kick(OnePerClass, 10, &have, d(ClientType::MiniProgram, "m", 4)), vec![2]);
        assert_eq!(devices_to_kick(OneMobileOneDesktop, 10, &have, d(ClientType::Mac, "m", 4)), vec![1, 2]);
        assert_eq!(devices_to_kick(OneMobileOneDesktop, 10, &have, d(ClientType::Ipad, "i", 4)), vec![0]);
        assert_eq!(devices_to_kick(Single, 10, &have, d(ClientType::Web, "x", 4)), vec![0, 1, 2]);
    }

    #[test]
    fn same_device_reconnect_and_cap() {
        let have = [d(ClientType::Ios, "p", 5), d(ClientType::Ios, "q", 1), d(ClientType::Ios, "r", 3)];
        assert_eq!(devices_to_kick(MultiDevicePolicy::Any, 10, &have, d(ClientType::Ios, "q", 9)), vec![1]);
        // Cap 3: a fourth device pushes out the oldest (q, at 1).
        assert_eq!(devices_to_kick(MultiDevicePolicy::Any, 3, &have, d(ClientType::Ios, "s", 9)), vec![1]);
        assert_eq!(devices_to_kick(MultiDevicePolicy::Any, 2, &have, d(ClientType::Ios, "s", 9)), vec![1, 2]);
    }
}
