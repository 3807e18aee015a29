// Stands in for resource:///org/gnome/shell/ui/popupMenu.js: a menu item with a label,
// visibility, sensitivity and the 'activate' signal a click emits.

import {changed} from '../record.js';

class Label {
    constructor(text) {
        this._text = text;
    }

    get text() {
        return this._text;
    }

    set text(text) {
        this._text = text;
        changed();
    }
}

export class PopupMenuItem {
    constructor(text, params = {}) {
        this.label = new Label(text);
        this.reactive = params.reactive ?? true;
        this.sensitive = true;
        this._visible = true;
        this._handlers = [];
    }

    get visible() {
        return this._visible;
    }

    set visible(visible) {
        this._visible = visible;
        changed();
    }

    setSensitive(sensitive) {
        this.sensitive = sensitive;
        changed();
    }

    connect(signal, callback) {
        this._handlers.push({signal, callback});
        return this._handlers.length;
    }

    // A click on the item.
    activate() {
        this._handlers.filter(h => h.signal === 'activate').forEach(h => h.callback(this));
    }
}
