// v2m dictation: a panel indicator for org.v2m.Dictation.
//
// The D-Bus proxy is generated from the interface XML that meson installs to
// $datadir/dbus-1/interfaces: the contract stays in one file, and a daemon
// that gains members needs no change here. The proxy does not auto-start the
// daemon (logging in must not load a Whisper model); Toggle does, through a
// plain call that D-Bus activation serves.

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';
import GObject from 'gi://GObject';
import St from 'gi://St';

import {Extension} from 'resource:///org/gnome/shell/extensions/extension.js';
import * as Main from 'resource:///org/gnome/shell/ui/main.js';
import * as PanelMenu from 'resource:///org/gnome/shell/ui/panelMenu.js';
import * as PopupMenu from 'resource:///org/gnome/shell/ui/popupMenu.js';

const BUS_NAME = 'org.v2m.Dictation';
const OBJECT_PATH = '/org/v2m/Dictation';
const INTERFACE = 'org.v2m.Dictation';
const INTERFACE_XML = `dbus-1/interfaces/${INTERFACE}.xml`;
const PREVIEW_CHARS = 80;
// One icon per State value, all from the standard (Adwaita) icon theme.
const ICONS = {
    idle: 'audio-input-microphone-symbolic',
    recording: 'media-record-symbolic',
    transcribing: 'content-loading-symbolic',
    processing: 'emblem-synchronizing-symbolic',
};
const NOT_RUNNING_ICON = 'microphone-disabled-symbolic';

function readInterfaceXml() {
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

// The end of the text: while dictating, the newest words are the interesting ones.
function preview(text) {
    return text.length > PREVIEW_CHARS ? `…${text.slice(-PREVIEW_CHARS)}` : text;
}

const Indicator = GObject.registerClass(
class Indicator extends PanelMenu.Button {
    _init(makeProxy) {
        super._init(0.0, 'v2m dictation');
        this._icon = new St.Icon({icon_name: NOT_RUNNING_ICON, style_class: 'system-status-icon'});
        this.add_child(this._icon);

        this._statusItem = new PopupMenu.PopupMenuItem('', {reactive: false});
        this.menu.addMenuItem(this._statusItem);
        this._toggleItem = new PopupMenu.PopupMenuItem('Start dictation');
        this._toggleItem.connect('activate', () => this._toggle());
        this.menu.addMenuItem(this._toggleItem);
        this._textItem = new PopupMenu.PopupMenuItem('', {reactive: false});
        this._textItem.visible = false;
        this.menu.addMenuItem(this._textItem);

        this._proxy = null;
        this._handlerIds = [];
        this._signalIds = [];
        this._cancellable = new Gio.Cancellable();
        this._sync();
        makeProxy(Gio.DBus.session, BUS_NAME, OBJECT_PATH, (proxy, error) => {
            if (error) {
                if (!error.matches(Gio.IOErrorEnum, Gio.IOErrorEnum.CANCELLED))
                    console.warn(`v2m: cannot watch ${BUS_NAME}: ${error.message}`);
                return;
            }
            this._proxy = proxy;
            // g-name-owner covers the daemon starting, exiting or crashing.
            this._handlerIds.push(proxy.connect('g-properties-changed', () => this._sync()));
            this._handlerIds.push(proxy.connect('notify::g-name-owner', () => this._sync()));
            this._signalIds.push(proxy.connectSignal('TranscriptionUpdated',
                (_proxy, _sender, [text, final]) => this._showText(text, final)));
            this._sync();
        }, this._cancellable, Gio.DBusProxyFlags.DO_NOT_AUTO_START);
    }

    _sync() {
        const running = Boolean(this._proxy?.g_name_owner);
        const state = running ? this._proxy.State : null;
        this._icon.icon_name = ICONS[state] ?? (running ? ICONS.idle : NOT_RUNNING_ICON);
        this._statusItem.label.text = running ? `v2m: ${state ?? 'starting'}` : 'v2m is not running';
        this._toggleItem.label.text = state === 'recording' ? 'Stop dictation' : 'Start dictation';
        // Toggle starts a stopped daemon through D-Bus activation, so it stays usable then.
        this._toggleItem.setSensitive(!running || state === 'idle' || state === 'recording');
    }

    _showText(text, final) {
        this._textItem.label.text = final ? `✔ ${preview(text)}` : preview(text);
        this._textItem.visible = text.length > 0;
    }

    _toggle() {
        Gio.DBus.session.call(BUS_NAME, OBJECT_PATH, INTERFACE, 'Toggle',
            null, null, Gio.DBusCallFlags.NONE, -1, null, (connection, result) => {
                try {
                    connection.call_finish(result);
                } catch (e) {
                    Main.notifyError('v2m dictation', e.message);
                }
            });
    }

    _onDestroy() {
        this._cancellable.cancel();
        if (this._proxy) {
            this._handlerIds.forEach(id => this._proxy.disconnect(id));
            this._signalIds.forEach(id => this._proxy.disconnectSignal(id));
            this._proxy = null;
        }
        super._onDestroy();
    }
});

export default class V2mExtension extends Extension {
    enable() {
        const xml = readInterfaceXml();
        if (!xml) {
            console.error(`v2m: ${INTERFACE_XML} is in no XDG data dir; install v2m with meson`);
            return;
        }
        this._indicator = new Indicator(Gio.DBusProxy.makeProxyWrapper(xml));
        Main.panel.addToStatusArea(this.uuid, this._indicator);
    }

    disable() {
        this._indicator?.destroy();
        this._indicator = null;
    }
}
