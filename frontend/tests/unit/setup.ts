// jsdom lacks a few browser APIs the app calls; stand-ins that do nothing.
window.scrollTo = (() => {}) as typeof window.scrollTo
HTMLMediaElement.prototype.load = () => {}
