/** The pull's progress meter on a clock the test drives: reports at most four a second, speed and time left. */
import { describe, expect, it } from "vitest";
import { PullProgressMeter } from "../server/models/pull-progress.ts";

describe("PullProgressMeter", () => {
  it("lets one report through per 250 ms however many chunks arrive", () => {
    let now = 0;
    const meter = new PullProgressMeter({ now: () => now });
    let reports = 0;
    // 64 KB chunks every 10 ms for 2 s: 200 chunks.
    for (let chunk = 1; chunk <= 200; chunk++) {
      now = chunk * 10;
      meter.sample(chunk * 65_536);
      if (meter.takeReport()) reports++;
    }
    expect(reports).toBe(8);
  });

  it("averages the speed over the last seconds and says the time left at that speed", () => {
    let now = 0;
    const meter = new PullProgressMeter({ now: () => now, windowMs: 5000 });
    expect(meter.bytesPerSecond()).toBe(0);
    expect(meter.secondsLeft(1000)).toBeNull();
    // 1 MB/s for 10 s, then 2 MB/s for 10 s: after the window has passed the new speed alone counts.
    for (let second = 0; second <= 20; second++) {
      now = second * 1000;
      meter.sample(second <= 10 ? second * 1_000_000 : 10_000_000 + (second - 10) * 2_000_000);
    }
    expect(meter.bytesPerSecond()).toBe(2_000_000);
    expect(meter.secondsLeft(40_000_000)).toBe(5);
  });

  it("starts the average afresh when the count goes down (a file started over)", () => {
    let now = 0;
    const meter = new PullProgressMeter({ now: () => now });
    meter.sample(5_000_000);
    now = 1000;
    meter.sample(6_000_000);
    now = 2000;
    meter.sample(1_000_000);
    expect(meter.bytesPerSecond()).toBe(0);
    now = 3000;
    meter.sample(1_500_000);
    expect(meter.bytesPerSecond()).toBe(500_000);
  });
});
