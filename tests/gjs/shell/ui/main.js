// Stands in for resource:///org/gnome/shell/ui/main.js: the panel keeps what is added to
// its status area, and notifications are recorded.

import {changed, notifications} from '../record.js';

export const panel = {
    statusArea: {},
    addToStatusArea(role, indicator) {
        this.statusArea[role] = indicator;
        changed();
    },
};

export function notifyError(title, body) {
    notifications.push({title, body});
    changed();
}
