// Stands in for resource:///org/gnome/shell/ui/panelMenu.js: a Button is a GObject, as
// the Shell's is (the extension registers a subclass), with a menu of items; destroy()
// runs _onDestroy() as the Shell's 'destroy' handler does.

import GObject from 'gi://GObject';

import {changed} from '../record.js';

export const Button = GObject.registerClass(
class Button extends GObject.Object {
    _init(_menuAlignment, nameText) {
        super._init();
        this.accessible_name = nameText;
        this.children = [];
        this.destroyed = false;
        this.menu = {
            items: [],
            addMenuItem(item) {
                this.items.push(item);
                changed();
            },
        };
    }

    add_child(child) {
        this.children.push(child);
        changed();
    }

    destroy() {
        this._onDestroy();
        this.destroyed = true;
    }

    _onDestroy() {
    }
});
