// What the stand-in Shell widgets were last set to reaches the probe (panel.js) through
// here: every change calls the listener, and notifications are kept in order.

let listener = () => {};

export function onChange(callback) {
    listener = callback;
}

export function changed() {
    listener();
}

export const notifications = [];
