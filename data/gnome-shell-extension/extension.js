// v2m dictation: a panel indicator for org.v2m.Dictation, drawn from what
// DictationClient (dictation.js) reports.

import GObject from 'gi://GObject';
import St from 'gi://St';

import {Extension} from 'resource:///org/gnome/shell/extensions/extension.js';
import * as Main from 'resource:///org/gnome/shell/ui/main.js';
import * as PanelMenu from 'resource:///org/gnome/shell/ui/panelMenu.js';
import * as PopupMenu from 'resource:///org/gnome/shell/ui/popupMenu.js';

import {
    DictationClient, INTERFACE_XML, NOT_RUNNING_ICON, indicatorView, readInterfaceXml, textView,
} from './dictation.js';

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
        const view = indicatorView(this._client.state, this._client.deliveryPath);
        this._icon.icon_name = view.icon;
        this._statusItem.label.text = view.status;
        this._toggleItem.label.text = view.toggleLabel;
        this._toggleItem.setSensitive(view.toggleSensitive);
    }

    _showText(text, final) {
        const view = textView(text, final);
        this._textItem.label.text = view.label;
        this._textItem.visible = view.visible;
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
