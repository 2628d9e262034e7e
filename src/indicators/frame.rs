//! A 1-bit picture: what a screen function draws, what the SSD1306 model's glass shows, and
//! what `/oled.png` serves. One type for all three, so "the same picture" is `==`.

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    pixels: Vec<bool>,
}

impl Frame {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![false; (width * height) as usize],
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.pixels[(y * self.width + x) as usize]
    }

    pub fn set(&mut self, x: u32, y: u32, on: bool) {
        if x < self.width && y < self.height {
            self.pixels[(y * self.width + x) as usize] = on;
        }
    }

    pub fn lit(&self) -> usize {
        self.pixels.iter().filter(|p| **p).count()
    }

    /// A PNG of the picture, `scale` screen pixels per panel pixel, lit pixels in an OLED's
    /// blue-white on black.
    #[cfg(feature = "demo")]
    pub fn to_png(&self, scale: u32) -> Result<Vec<u8>, png::EncodingError> {
        let scale = scale.max(1);
        let (w, h) = (self.width * scale, self.height * scale);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let on = self.get(x / scale, y / scale);
                rgb.extend_from_slice(if on {
                    &[0xd8, 0xf0, 0xff]
                } else {
                    &[0x05, 0x08, 0x10]
                });
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.write_header()?.write_image_data(&rgb)?;
        Ok(out)
    }

    /// Reads a PNG written by [`Frame::to_png`] with scale 1 (golden files in tests/).
    #[cfg(feature = "demo")]
    pub fn from_png(bytes: &[u8]) -> Result<Self, png::DecodingError> {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let info = reader.next_frame(&mut buf)?;
        let channels = info.color_type.samples();
        let mut frame = Frame::new(info.width, info.height);
        for y in 0..info.height {
            for x in 0..info.width {
                let at = ((y * info.width + x) as usize) * channels;
                frame.set(x, y, buf.get(at).is_some_and(|v| *v > 0x80));
            }
        }
        Ok(frame)
    }
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Frame {
    type Color = BinaryColor;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if point.x >= 0 && point.y >= 0 {
                self.set(point.x as u32, point.y as u32, color.is_on());
            }
        }
        Ok(())
    }
}
