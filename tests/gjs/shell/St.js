// Stands in for gi://St: the one widget the extension makes itself.

import {changed} from './record.js';

class Icon {
    constructor({icon_name: iconName, style_class: styleClass}) {
        this._iconName = iconName;
        this.style_class = styleClass;
    }

    get icon_name() {
        return this._iconName;
    }

    set icon_name(name) {
        this._iconName = name;
        changed();
    }
}

export default {Icon};
