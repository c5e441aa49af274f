def test_warm(busybox_image, python_image):
    pass
