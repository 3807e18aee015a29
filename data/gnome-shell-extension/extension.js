// v2m dictation: a panel indicator for org.v2m.Dictation, drawn from what
// DictationClient (dictation.js) reports.

import GObject from 'gi://GObject';
import St from 'gi://St';

import {Extension} from 'resource:///org/gnome/shell/extensions/extension.js';
import * as Main from 'resource:///org/gnome/shell/ui/main.js';
import * as PanelMenu from 'resource:///org/gnome/shell/ui/panelMenu.js';
import * as PopupMenu from 'resource:///org/gnome/shell/ui/popupMenu.js';

import {DictationClient, INTERFACE_XML, readInterfaceXml} from './dictation.js';

const PREVIEW_CHARS = 80;
// One icon per State value, all from the standard (Adwaita) icon theme.
const ICONS = {
    idle: 'audio-input-microphone-symbolic',
    recording: 'media-record-symbolic',
    transcribing: 'content-loading-symbolic',
    processing: 'emblem-synchronizing-symbolic',
};
const NOT_RUNNING_ICON = 'microphone-disabled-symbolic';

// The end of the text: while dictating, the newest words are the interesting ones.
function preview(text) {
    return text.length > PREVIEW_CHARS ? `…${text.slice(-PREVIEW_CHARS)}` : text;
}

const Indicator = GObject.registerClass(
class Indicator extends PanelMenu.Button {
    _init(interfaceXml) {
        super._init(0.0, 'v2m dictation');
        this._icon = new St.Icon({icon_name: NOT_RUNNING_ICON, style_class: 'system-status-icon'});
        this.add_child(this._icon);

        this._statusItem = new PopupMenu.PopupMenuItem('', {reactive: false});
        this.menu.addMenuItem(this._statusItem);
        this._toggleItem = new PopupMenu.PopupMenuItem('Start dictation');
        this._toggleItem.connect('activate',
            () => this._client.toggle(message => Main.notifyError('v2m dictation', message)));
        this.menu.addMenuItem(this._toggleItem);
        this._textItem = new PopupMenu.PopupMenuItem('', {reactive: false});
        this._textItem.visible = false;
        this.menu.addMenuItem(this._textItem);

        this._client = new DictationClient(interfaceXml, {
            onChange: () => this._sync(),
            onText: (text, final) => this._showText(text, final),
        });
        this._sync();
    }

    _sync() {
        const state = this._client.state;
        this._icon.icon_name = state === null ? NOT_RUNNING_ICON : ICONS[state] ?? ICONS.idle;
        const path = this._client.deliveryPath;
        this._statusItem.label.text = state === null ? 'v2m is not running'
            : path ? `v2m: ${state} · typing via ${path}` : `v2m: ${state}`;
        this._toggleItem.label.text = state === 'recording' ? 'Stop dictation' : 'Start dictation';
        // Toggle starts a stopped daemon through D-Bus activation, so it stays usable then.
        this._toggleItem.setSensitive(state === null || state === 'idle' || state === 'recording');
    }

    _showText(text, final) {
        this._textItem.label.text = final ? `✔ ${preview(text)}` : preview(text);
        this._textItem.visible = text.length > 0;
    }

    _onDestroy() {
        this._client.destroy();
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
        this._indicator = new Indicator(xml);
        Main.panel.addToStatusArea(this.uuid, this._indicator);
    }

    disable() {
        this._indicator?.destroy();
        this._indicator = null;
    }
}
