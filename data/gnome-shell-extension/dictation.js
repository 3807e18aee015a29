// The org.v2m.Dictation side of the indicator, and what the indicator shows for
// it, without Shell imports so that plain gjs can run it (the tests do, against
// the daemon).
//
// The proxy is generated from the interface XML that meson installs to
// $datadir/dbus-1/interfaces: the contract stays in one file, and a daemon
// that gains members needs no change here. The proxy does not auto-start the
// daemon (logging in must not load a Whisper model); toggle() does, through a
// plain call that D-Bus activation serves.

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';

export const BUS_NAME = 'org.v2m.Dictation';
export const OBJECT_PATH = '/org/v2m/Dictation';
export const INTERFACE = 'org.v2m.Dictation';
export const INTERFACE_XML = `dbus-1/interfaces/${INTERFACE}.xml`;

const PREVIEW_CHARS = 80;
// One icon per State value, all from the standard (Adwaita) icon theme.
export const ICONS = {
    idle: 'audio-input-microphone-symbolic',
    recording: 'media-record-symbolic',
    transcribing: 'content-loading-symbolic',
    processing: 'emblem-synchronizing-symbolic',
};
export const NOT_RUNNING_ICON = 'microphone-disabled-symbolic';

// What the panel shows for a State (null: the daemon is not running) and a DeliveryPath.
export function indicatorView(state, deliveryPath) {
    return {
        icon: state === null ? NOT_RUNNING_ICON : ICONS[state] ?? ICONS.idle,
        status: state === null ? 'v2m is not running'
            : deliveryPath ? `v2m: ${state} · typing via ${deliveryPath}` : `v2m: ${state}`,
        toggleLabel: state === 'recording' ? 'Stop dictation' : 'Start dictation',
        // Toggle starts a stopped daemon through D-Bus activation, so it stays usable then.
        toggleSensitive: state === null || state === 'idle' || state === 'recording',
    };
}

// The menu line for a TranscriptionUpdated: the end of the text (while dictating, the
// newest words are the interesting ones), marked once final; hidden while empty.
export function textView(text, final) {
    const shown = text.length > PREVIEW_CHARS ? `…${text.slice(-PREVIEW_CHARS)}` : text;
    return {label: final ? `✔ ${shown}` : shown, visible: text.length > 0};
}

// The installed contract from the first XDG data dir that has it, or null.
export function readInterfaceXml() {
    for (const dir of [GLib.get_user_data_dir(), ...GLib.get_system_data_dirs()]) {
        const path = GLib.build_filenamev([dir, INTERFACE_XML]);
        try {
            const [, bytes] = Gio.File.new_for_path(path).load_contents(null);
            return new TextDecoder().decode(bytes);
        } catch {
            // not installed under this data dir; try the next one
        }
    }
    return null;
}

export class DictationClient {
    // onChange(): the State or the daemon's presence changed.
    // onText(text, final): TranscriptionUpdated.
    constructor(interfaceXml, {onChange, onText}) {
        this._proxy = null;
        this._handlerIds = [];
        this._signalIds = [];
        this._cancellable = new Gio.Cancellable();
        const makeProxy = Gio.DBusProxy.makeProxyWrapper(interfaceXml);
        makeProxy(Gio.DBus.session, BUS_NAME, OBJECT_PATH, (proxy, error) => {
            if (error) {
                if (!error.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                    console.warn(`v2m: cannot watch ${BUS_NAME}: ${error.message}`);
                return;
            }
            this._proxy = proxy;
            // g-name-owner covers the daemon starting, exiting or crashing.
            this._handlerIds.push(proxy.connect('g-properties-changed', () => onChange()));
            this._handlerIds.push(proxy.connect('notify::g-name-owner', () => onChange()));
            this._signalIds.push(proxy.connectSignal('TranscriptionUpdated',
                (_proxy, _sender, [text, final]) => onText(text, final)));
            onChange();
        }, this._cancellable, Gio.DBusProxyFlags.DO_NOT_AUTO_START);
    }

    // The daemon's State, or null while it is not running.
    get state() {
        return this._proxy?.g_name_owner ? this._proxy.State ?? null : null;
    }

    // How final texts reach the focused app (DeliveryPath: "ibus", "portal", ...), or
    // null while the daemon is not running or has not looked yet.
    get deliveryPath() {
        return this._proxy?.g_name_owner ? this._proxy.DeliveryPath || null : null;
    }

    // onError(message) is called when the call fails, e.g. the daemon cannot start.
    toggle(onError) {
        Gio.DBus.session.call(BUS_NAME, OBJECT_PATH, INTERFACE, 'Toggle',
            null, null, Gio.DBusCallFlags.NONE, -1, null, (connection, result) => {
                try {
                    connection.call_finish(result);
                } catch (e) {
                    onError(e.message);
                }
            });
    }

    destroy() {
        this._cancellable.cancel();
        if (this._proxy) {
            this._handlerIds.forEach(id => this._proxy.disconnect(id));
            this._signalIds.forEach(id => this._proxy.disconnectSignal(id));
            this._proxy = null;
        }
    }
}
