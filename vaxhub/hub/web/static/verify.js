// The verifier page's camera: frames from the camera are read by ZXing-C++
// (zxing-wasm, served by the hub); the first QR read is put in the form and
// submitted, so the hub verifies it exactly like a pasted or uploaded code.
(function () {
  "use strict";
  var script = document.currentScript;
  var button = document.getElementById("scan");
  var scanner = document.getElementById("scanner");
  var video = document.getElementById("camera");
  var status = document.getElementById("scanner-status");
  var form = document.getElementById("verify-form");
  var text = document.getElementById("qr");
  if (!button || !window.ZXingWASM || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return; // no camera support: the upload and paste fields still work
  }
  window.ZXingWASM.prepareZXingModule({
    overrides: {
      locateFile: function (path, prefix) {
        return path.endsWith(".wasm") ? script.dataset.wasm : prefix + path;
      }
    }
  });
  button.hidden = false;
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
  }

  function scanFrame() {
    if (!stream) { return; }
    if (video.readyState < 2 || !video.videoWidth) { requestAnimationFrame(scanFrame); return; }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    context.drawImage(video, 0, 0);
    var frame = context.getImageData(0, 0, canvas.width, canvas.height);
    window.ZXingWASM.readBarcodes(frame, { formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 1 })
      .then(function (results) {
        var found = results.filter(function (r) { return r.isValid && r.text; })[0];
        if (found) {
          stop();
          text.value = found.text;
          form.submit();
        } else {
          setTimeout(scanFrame, 150);
        }
      })
      .catch(function () { setTimeout(scanFrame, 500); });
  }

  button.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        scanner.hidden = false;
        status.textContent = script.dataset.looking;
        return video.play();
      })
      .then(scanFrame)
      .catch(function () {
        stop();
        scanner.hidden = false;
        status.textContent = script.dataset.noCamera;
      });
  });
  window.addEventListener("pagehide", stop);
})();
